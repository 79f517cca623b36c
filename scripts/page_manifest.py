"""The pages' GraphQL documents (the student page's and the teacher's register's) as an Apollo
persisted query manifest (``deploy/rollcall-web-documents.json``), for deployments that run
trusted documents only (``ROLLCALL_TRUSTED_DOCUMENTS=enforce``, or
``…_CLIENTS=rollcall-web=enforce``): register it with ``rollcall documents register
deploy/rollcall-web-documents.json`` before turning that on.

The documents are read from ``graph/web/js/queries.js`` by Node.js (the module is evaluated as
the browser evaluates it, so each body is the exact text the page hashes)::

    .venv/bin/python scripts/page_manifest.py [--check]

``--check`` exits 1 when the committed manifest differs from the page's documents.
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
    found = subprocess.run(
        [node, "--input-type=module", "-e", EXPORT, QUERIES.as_uri()],
        check=True,
        capture_output=True,
        text=True,
    )
    documents: list[str] = json.loads(found.stdout)
    return documents


def manifest(documents: list[str]) -> str:
    """Apollo's manifest (version 1) of ``documents``, one operation each, sorted by name."""
    operations = []
    for body in documents:
        [operation] = [
            node for node in parse(body).definitions if isinstance(node, OperationDefinitionNode)
        ]
        assert operation.name is not None, "every page document is named"
        operations.append(
            {
                "id": document_hash(body),
                "name": operation.name.value,
                "type": operation.operation.value,
                "body": body,
            }
        )
    operations.sort(key=lambda operation: operation["name"])
    content = {"format": APOLLO_MANIFEST_FORMAT, "version": 1, "operations": operations}
    return json.dumps(content, indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
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
