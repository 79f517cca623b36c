"""``rollcall serve`` and ``rollcall worker`` as child processes: for tests, benchmarks and
drills that need real processes (websockets, several API processes sharing Redis, signals)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0  # the stop signal, then SIGKILL after this long


class ServerFailed(RuntimeError):
    """The server exited early or never became healthy; the message ends with its log."""


async def node_packages(directory: Path) -> str | None:
    """Why ``directory``'s Node.js packages cannot be used here, or None once they are
    installed (``npm ci`` from its lockfile, the first time)."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        return "Node.js and npm are not installed"
    if (directory / "node_modules").is_dir():
        return None
    installing = await asyncio.create_subprocess_exec(
        npm,
        "ci",
        "--no-audit",
        "--no-fund",
        "--silent",
        cwd=directory,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await asyncio.wait_for(installing.communicate(), timeout=300)
    except TimeoutError:
        installing.kill()
        await installing.wait()
        return "npm ci did not finish within 5 minutes (is the registry reachable?)"
    if installing.returncode != 0:
        return f"npm ci failed: {errors.decode(errors='replace')[-300:]}"
    return None


def child_env(**settings: str) -> dict[str, str]:
    """This process's environment without its ``ROLLCALL_*`` variables, then ``settings``: a
    child configured by what it is given, not by what the parent happened to have."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROLLCALL_")}
    env.update(settings)
    return env


@dataclass(frozen=True)
class ChildProcess:
    """A ``rollcall`` process started here, its output in a log file."""

    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self, stop_signal: signal.Signals = signal.SIGTERM) -> int:
        """Send ``stop_signal``, wait for the exit (SIGKILL if it lingers); the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(stop_signal)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode or 0


@dataclass(frozen=True)
class ServerProcess(ChildProcess):
    base_url: str
    host: str
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/graphql"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rollcall_command(*arguments: str) -> list[str]:
    """``rollcall …`` from the interpreter's own environment."""
    script = Path(sys.executable).with_name("rollcall")
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "rollcall"]
    return [*prefix, *arguments]


async def _start(env: Mapping[str, str], name: str, *arguments: str) -> ChildProcess:
    with tempfile.NamedTemporaryFile(
        prefix=f"rollcall-{name}-", suffix=".log", delete=False
    ) as log:
        process = await asyncio.create_subprocess_exec(
            *rollcall_command(*arguments),
            env=dict(env),
            cwd=str(ROOT),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    return ChildProcess(process=process, log_path=Path(log.name))


async def start_worker(env: Mapping[str, str]) -> ChildProcess:
    """``rollcall worker``, started (not waited for: a worker answers nothing)."""
    return await _start(env, "worker", "worker")


@contextlib.asynccontextmanager
async def running_worker(env: Mapping[str, str]) -> AsyncIterator[ChildProcess]:
    """A worker process until the block ends (then stopped with SIGTERM)."""
    worker = await start_worker(env)
    try:
        yield worker
    finally:
        await worker.stop()
        _discard(worker.log_path)


@contextlib.asynccontextmanager
async def running_server(
    env: Mapping[str, str], *, stop_signal: signal.Signals = signal.SIGINT
) -> AsyncIterator[ServerProcess]:
    """An API process on a free port, healthy, until the block ends (then stopped)."""
    host, port = "127.0.0.1", free_port()
    started = await _start(env, "server", "serve", "--host", host, "--port", str(port))
    server = ServerProcess(
        base_url=f"http://{host}:{port}",
        host=host,
        port=port,
        process=started.process,
        log_path=started.log_path,
    )
    try:
        await _wait_healthy(server)
        yield server
    finally:
        await server.stop(stop_signal)
        _discard(server.log_path)


def _discard(log_path: Path) -> None:
    log_path.unlink(missing_ok=True)


async def _wait_healthy(server: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as probe:
        while True:
            if server.process.returncode is not None:
                raise ServerFailed(f"server exited early:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await probe.get("/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ServerFailed(f"server not healthy in time:\n{server.log_tail()}")
            await asyncio.sleep(0.1)
