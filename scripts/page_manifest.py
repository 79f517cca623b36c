"""Writes the Apollo persisted query manifest of the pages' GraphQL documents
(``deploy/rollcall-web-documents.json``; README.md, "Persisted queries", says when to register
it), read from ``graph/web/js/queries.js`` by Node.js as the browser evaluates it, so that each
body is the exact text the page hashes.

    .venv/bin/python scripts/page_manifest.py [--check]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from graphql import OperationDefinitionNode, parse

from services.platform.persisted_queries import document_hash
from services.trusted_documents import APOLLO_MANIFEST_FORMAT

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "graph" / "web" / "js" / "queries.js"
MANIFEST = ROOT / "deploy" / "rollcall-web-documents.json"
EXPORT = "const q = await import(process.argv[1]); console.log(JSON.stringify(Object.values(q)));"


def page_documents(node: str) -> list[str]:
    """Every document ``queries.js`` exports, as Node.js evaluates the module."""
    command = [node, "--input-type=module", "-e", EXPORT, QUERIES.as_uri()]
    found = subprocess.run(command, check=True, capture_output=True, text=True)
    return list(json.loads(found.stdout))


def manifest(documents: list[str]) -> str:
    """Apollo's manifest (version 1) of ``documents``, one operation each, sorted by name."""
    operations = []
    for body in documents:
        [operation] = [
            node for node in parse(body).definitions if isinstance(node, OperationDefinitionNode)
        ]
        assert operation.name is not None, "every page document is named"
        name, kind = operation.name.value, operation.operation.value
        operations.append({"id": document_hash(body), "name": name, "type": kind, "body": body})
    operations.sort(key=lambda operation: operation["name"])
    content = {"format": APOLLO_MANIFEST_FORMAT, "version": 1, "operations": operations}
    return json.dumps(content, indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when stale; write nothing")
    args = parser.parse_args()
    node = shutil.which("node")
    if node is None:
        print("Node.js is needed to read graph/web/js/queries.js", file=sys.stderr)
        return 2
    wanted = manifest(page_documents(node))
    if args.check:
        if not MANIFEST.exists() or MANIFEST.read_text() != wanted:
            print(f"{MANIFEST.relative_to(ROOT)} is out of date: run scripts/page_manifest.py")
            return 1
        return 0
    MANIFEST.write_text(wanted)
    print(f"wrote {MANIFEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
