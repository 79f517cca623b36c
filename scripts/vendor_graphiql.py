"""Copies the files strawberry's GraphiQL page loads from unpkg into ``graph/vendor/graphiql/``.

Each file comes from its package's tarball on the npm registry and must match the Subresource
Integrity hash strawberry's template pins for it, so what the app serves is byte for byte what
the CDN would have served. Run it after upgrading strawberry (its template may pin other
versions); ``--check`` only verifies the copies (the tests do the same).

    .venv/bin/python scripts/vendor_graphiql.py [--check]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "graph" / "vendor" / "graphiql"
REGISTRY = "https://registry.npmjs.org"
# What strawberry's GraphiQL template pins:
# src="https://unpkg.com/<package>@<version>/<path>" integrity="sha384-…"
ASSET = re.compile(
    r'(?:src|href)="https://unpkg\.com/(?P<package>(?:@[^/]+/)?[^@/]+)@(?P<version>[^/]+)/'
    r'(?P<path>[^"]+)"\s+integrity="(?P<integrity>sha384-[^"]+)"'
)


def integrity(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


def fetch(asset: re.Match[str]) -> bytes:
    name = asset["package"].rsplit("/", 1)[-1]
    url = f"{REGISTRY}/{asset['package']}/-/{name}-{asset['version']}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        tarball = response.read()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile(f"package/{asset['path']}")
        if member is None:
            raise SystemExit(f"{url} has no {asset['path']}")
        return member.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the copies, fetch nothing")
    args = parser.parse_args(argv)
    assets = list(ASSET.finditer(get_graphql_ide_html(graphql_ide="graphiql")))
    if not assets:
        raise SystemExit("strawberry's GraphiQL template names no unpkg asset: update this script")
    failed = False
    for asset in assets:
        path = TARGET / f"{asset['package']}@{asset['version']}" / asset["path"]
        if args.check:
            ok = path.is_file() and integrity(path.read_bytes()) == asset["integrity"]
            print(f"{'ok' if ok else 'MISMATCH'}  {path.relative_to(ROOT)}")
            failed = failed or not ok
            continue
        content = fetch(asset)
        if integrity(content) != asset["integrity"]:
            raise SystemExit(f"{asset[0]}: the registry's file does not match the pinned hash")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path.relative_to(ROOT)} ({len(content):,} bytes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
