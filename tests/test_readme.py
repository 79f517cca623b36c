"""Every GraphQL example in the README is a valid operation of the schema (a newcomer copies
them into GraphiQL first)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import DocumentNode, OperationDefinitionNode, parse, print_ast, validate

from graph.schema import schema

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.DOTALL)
# A block may list several operations, one after another: each is checked on its own.
EXAMPLES = [
    DocumentNode(definitions=(definition,))
    for block in BLOCKS
    for definition in parse(block).definitions
    if isinstance(definition, OperationDefinitionNode)
]


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("document", EXAMPLES, ids=lambda document: print_ast(document)[:60])
def test_a_readme_example_validates(document):
    assert validate(schema._schema, document) == []
