"""What a GraphQL document may ask for, checked before anything runs.

Depth, aliases and tokens use strawberry's limiters. The cost estimate is ours: every field
costs 1, and a field taking ``first`` multiplies what is under it by that many (by the most a
page may hold when ``first`` is a variable, whose value validation does not see); other lists
by LIST_ESTIMATE. A document over any limit fails validation and nothing executes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from resolvers.pagination import MAX_PAGE_SIZE
from services.settings import Settings

LIST_ESTIMATE = 10
# Deeper than any fragment nesting a real document has; stops runaway recursion on documents
# other rules reject (fragment cycles) before they are reported.
MAX_WALK_DEPTH = 64


def cost_rule(max_cost: int) -> type[ValidationRule]:
    class CostRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            context: ValidationContext = self.context
            root = context.schema.get_root_type(node.operation)
            if root is None:
                return
            fragments = {
                definition.name.value: definition
                for definition in context.document.definitions
                if isinstance(definition, FragmentDefinitionNode)
            }
            cost = selection_cost(node.selection_set, root, fragments, 0)
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"The query's estimated cost is {cost}, over the limit of {max_cost}: "
                        "ask for smaller pages or fewer nested lists.",
                        node,
                    )
                )

    return CostRule


def selection_cost(
    selection_set: SelectionSetNode | None,
    parent: Any,
    fragments: dict[str, FragmentDefinitionNode],
    depth: int,
) -> int:
    if selection_set is None or depth > MAX_WALK_DEPTH or not isinstance(parent, GraphQLObjectType):
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            total += field_cost(selection, parent, fragments, depth)
        elif isinstance(selection, InlineFragmentNode):
            total += selection_cost(selection.selection_set, parent, fragments, depth + 1)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                total += selection_cost(fragment.selection_set, parent, fragments, depth + 1)
    return total


def field_cost(
    node: FieldNode,
    parent: GraphQLObjectType,
    fragments: dict[str, FragmentDefinitionNode],
    depth: int,
) -> int:
    definition = parent.fields.get(node.name.value)
    if definition is None:
        return 1
    multiplier = 1
    if "first" in definition.args:
        given = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if isinstance(given, IntValueNode):
            multiplier = max(int(given.value), 0)
        elif given is not None:
            multiplier = MAX_PAGE_SIZE
        else:
            multiplier = definition.args["first"].default_value or MAX_PAGE_SIZE
    elif is_list_type(get_nullable_type(definition.type)) and not parent.name.endswith(
        "Connection"
    ):
        multiplier = LIST_ESTIMATE
    child = get_named_type(definition.type)
    inner = selection_cost(node.selection_set, child, fragments, depth + 1)
    return 1 + multiplier * inner


def query_limits(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The extensions that enforce ``settings``' query limits (and introspection's switch)."""
    cost = cost_rule(settings.query_max_cost)
    limits: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=settings.query_max_tokens),
        lambda: QueryDepthLimiter(max_depth=settings.query_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.query_max_aliases),
        lambda: AddValidationRules([cost]),
    ]
    if not settings.introspection:
        limits.append(DisableIntrospection)
    return limits
