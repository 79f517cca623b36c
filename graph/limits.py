"""What a GraphQL document may ask for, checked before anything runs.

Depth, aliases and tokens use strawberry's limiters. The cost estimate is ours: every field
costs 1, and a field taking ``first`` multiplies what is under it by that many (by the most a
page may hold when ``first`` is a variable, whose value validation does not see); other lists
by LIST_ESTIMATE. A document over any limit fails validation and nothing executes.

The limits are checked in a pass of their own before the full validation, which is skipped for
a document over one: some of graphql-core's rules are quadratic in the fields of a selection
(500 aliases took 39 ms to validate, benchmarks/governance.py), and an abusive document should
cost less to refuse than to send. Their rule classes are made once per schema: strawberry's
limiter extensions make new ones per request, which kept the validation cache (keyed by the
rules) from ever hitting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
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
from graphql.utilities import TypeInfo
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.schema import validate_document

from graph.input_rules import InputLiterals, variable_errors
from resolvers.pagination import MAX_PAGE_SIZE
from services.platform.settings import Settings

LIST_ESTIMATE = 10
VALIDATION_CACHE_SIZE = 512
# Deeper than any fragment nesting a real document has; stops runaway recursion on documents
# other rules reject (fragment cycles) before they are reported.
MAX_WALK_DEPTH = 64


def cost_rule(max_cost: int) -> type[ValidationRule]:
    class CostRule(ValidationRule):
        """Works when made, as strawberry's limiters do: no walk of the document is needed."""

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for node, cost in operation_costs(context.schema, context.document):
                if cost > max_cost:
                    self.report_error(
                        GraphQLError(
                            f"The query's estimated cost is {cost}, over the limit of "
                            f"{max_cost}: ask for smaller pages or fewer nested lists.",
                            node,
                        )
                    )

    return CostRule


@lru_cache(maxsize=VALIDATION_CACHE_SIZE)
def operation_costs(
    schema: GraphQLSchema, document: DocumentNode
) -> tuple[tuple[OperationDefinitionNode, int], ...]:
    """Each operation of ``document`` with its estimated cost."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    costs = []
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode):
            root = schema.get_root_type(node.operation)
            costs.append(
                (node, selection_cost(node.selection_set, root, fragments, 0) if root else 0)
            )
    return tuple(costs)


def request_cost_errors(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, context: Any
) -> list[GraphQLError]:
    """The refusal of an operation that, with those before it in the same request (a batch),
    would cost more than one request may."""
    budget = getattr(context, "cost_budget", None)
    if budget is None:
        return []
    costs = operation_costs(schema, document)
    chosen = [
        cost for node, cost in costs if operation_name in (None, getattr(node.name, "value", None))
    ]
    if budget.spend(max(chosen, default=0)):
        return []
    return [
        GraphQLError(
            f"The request's operations together cost {budget.spent}, over the limit of "
            f"{budget.limit} for one request: send fewer operations or smaller ones."
        )
    ]


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


# Full validation results by (schema, document, rules): ParserCache hands back the same document
# object for the same text, so a document seen before is not validated again.
cached_validation = lru_cache(maxsize=VALIDATION_CACHE_SIZE)(validate_document)


@lru_cache(maxsize=VALIDATION_CACHE_SIZE)
def limit_errors(
    schema: GraphQLSchema, document: DocumentNode, limits: tuple[type[ValidationRule], ...]
) -> list[GraphQLError]:
    """What the first limit ``document`` breaks says (nothing when within all), cached like the
    full validation: a document seen before is not walked again."""
    over: list[GraphQLError] = []
    # The limit rules do their work when made: no walk of the document with type information
    # (graphql-core's validate), which costs more than the checks.
    limits_context = ValidationContext(schema, document, TypeInfo(schema), over.append)
    for rule in limits:
        rule(limits_context)
        if over:  # one refusal is enough: the rest would cost without changing it
            break
    return over


class Validation(SchemaExtension):
    """Validation in two passes: ``limits`` (cheap, linear) first; then, for a document within
    them, the full validation, cached. Stands in for strawberry's ValidationCache, which would
    validate whatever the first pass found."""

    def __init__(self, limits: tuple[type[ValidationRule], ...]) -> None:
        self.limits = limits

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            schema = context.schema._schema
            context.pre_execution_errors = (
                limit_errors(schema, document, self.limits)
                or variable_errors(document, context.variables)
                or request_cost_errors(schema, document, context.operation_name, context.context)
                or cached_validation(schema, document, context.validation_rules)
            )
        yield


def validation(settings: Settings | None) -> list[Callable[[], SchemaExtension]]:
    """The extensions that validate documents: within ``settings``' query limits (none without
    settings), and without introspection when it is off."""
    if settings is None:
        return [lambda: Validation(())]
    rules = (  # cheapest first
        aliases_validator(settings.query_max_aliases),
        depth_validator(settings.query_max_depth, None),
        cost_rule(settings.query_max_cost),
        InputLiterals,
    )
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=settings.query_max_tokens),
        lambda: Validation(rules),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return extensions
