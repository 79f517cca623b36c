"""Which operation a request runs, and who runs it, as its log lines and metrics name them:
told to the current request record (services/platform/logs.py) by a schema extension."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from services.auth import Viewer
from services.platform.logs import current_request


def request_fields(context: object) -> dict[str, object]:
    """The current request's identity for a log record, else what ``context`` knows of it."""
    record = current_request.get()
    if record is not None:
        return record.fields()
    found: dict[str, object] = {"requestId": getattr(context, "request_id", None)}
    viewer = getattr(context, "viewer_or_error", None)
    if isinstance(viewer, Viewer):
        found.update(tenantId=str(viewer.tenant_id), userId=str(viewer.user_id))
    return found


def _first_field(
    selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], depth: int = 0
) -> str | None:
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            return selection.name.value
        if depth > 8:
            continue
        if isinstance(selection, InlineFragmentNode):
            found = _first_field(selection.selection_set, fragments, depth + 1)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            found = _first_field(
                fragments[selection.name.value].selection_set, fragments, depth + 1
            )
        else:
            found = None
        if found is not None:
            return found
    return None


class OperationNames(SchemaExtension):
    """Tells the current request record which operation runs: its ``operationName``, else its
    first root field (and always the root field, for metrics)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            note_operation(*operation_labels(document, context.operation_name))
        yield


def chosen_operation(document: DocumentNode, wanted: str | None) -> OperationDefinitionNode | None:
    """The operation ``wanted`` names, or the only one; None when that is ambiguous."""
    operations = [
        node for node in document.definitions if isinstance(node, OperationDefinitionNode)
    ]
    return next(
        (node for node in operations if node.name and node.name.value == wanted),
        operations[0] if len(operations) == 1 or (wanted is None and operations) else None,
    )


def operation_labels(document: DocumentNode, wanted: str | None) -> tuple[str, str]:
    """The operation's name for logs (its ``operationName``, else its first root field) and its
    first root field ("unknown" when there is none to tell)."""
    chosen = chosen_operation(document, wanted)
    root = None
    if chosen is not None:
        fragments = {
            node.name.value: node
            for node in document.definitions
            if isinstance(node, FragmentDefinitionNode)
        }
        root = _first_field(chosen.selection_set, fragments)
    return wanted or root or "unknown", root or "unknown"


def note_operation(operation: str, root: str) -> None:
    """Tell the current request record (if any) which operation runs."""
    record = current_request.get()
    if record is not None:
        record.operations.append(operation)
        record.root_fields.append(root)
