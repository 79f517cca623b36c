"""What every String and Date/DateTime argument must be, checked once at the edge for all of
them, so that no resolver sees a value the database or the date arithmetic would fail on.

Text must be valid Unicode without NUL (PostgreSQL refuses both, and a lone surrogate cannot
even be encoded); dates lie within ``MIN_DATE`` … ``MAX_DATE`` (``9999-12-31`` plus a week, or
``0001-01-01T00:00+14:00`` in UTC, would overflow). Variables are checked with the document's
validation, before anything runs; literals by a validation rule; dates by the Date and DateTime
scalars too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from operator import methodcaller
from typing import Any

import dateutil.parser
from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    ObjectFieldNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValidationContext,
    ValidationRule,
    VariableDefinitionNode,
    VariableNode,
    get_named_type,
    visit,
)
from graphql.language import Visitor
from strawberry.schema.types.base_scalars import wrap_parser
from strawberry.types.scalar import ScalarDefinition

from services.platform.errors import Invalid

MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2999, 12, 31)


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def hostile_variable(values: dict[str, Any] | None) -> tuple[str, str, str] | None:
    """(variable, path within it, problem) of the first text in ``values`` that cannot be
    stored: ``("input", ".marks[2].studentId", "must not contain NUL characters")``."""
    stack: list[tuple[str, str, Any]] = [
        (name, "", value) for name, value in (values or {}).items()
    ]
    while stack:
        name, path, value = stack.pop()
        if isinstance(value, str):
            if (problem := text_problem(value)) is not None:
                return name, path, problem
        elif isinstance(value, dict):
            stack.extend((name, f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((name, f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def argument_path(ancestors: Sequence[Any]) -> str:
    """``input.date`` of a value inside argument ``input``, field ``date``."""
    names = [a.name.value for a in ancestors if isinstance(a, ArgumentNode | ObjectFieldNode)]
    return ".".join(names)


def argument_of(document: DocumentNode, variable: str) -> str | None:
    """The argument path (``newPassword``, ``input.reason``) where ``$variable`` is used."""
    found: list[str] = []

    class Uses(Visitor):
        def enter_variable(
            self, node: VariableNode, key: Any, parent: Any, path: Any, ancestors: Any
        ) -> Any:
            if node.name.value != variable or isinstance(parent, VariableDefinitionNode):
                return None
            found.append(argument_path((*ancestors, parent)))
            return self.BREAK

    visit(document, Uses())
    return found[0] if found and found[0] else None


def variable_errors(document: DocumentNode, values: dict[str, Any] | None) -> list[GraphQLError]:
    """The refusal of a variable holding text that cannot be stored, naming the argument it
    is given to (its own name when unused); none when every text is fit."""
    if (hostile := hostile_variable(values)) is None:
        return []
    variable, path, problem = hostile
    field = (argument_of(document, variable) or variable) + path
    message = f"The value of {field} {problem}."
    return [GraphQLError(message, original_error=Invalid(field, message))]


class InputLiterals(ValidationRule):
    """Refuses a string literal of the document that cannot be stored, or a Date/DateTime
    literal out of bounds, naming its argument (``input.date``)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        type_info = TypeInfo(context.schema)
        rule = self

        class Literals(Visitor):
            def enter_string_value(
                self, node: StringValueNode, key: Any, parent: Any, path: Any, ancestors: Any
            ) -> Any:
                named = get_named_type(type_info.get_input_type())
                parse = BOUNDED_PARSERS.get(named.name) if named is not None else None
                problem = text_problem(node.value)
                if problem is None and parse is not None:
                    try:
                        parse(node.value)
                    except OutOfRange as error:
                        problem = f"is out of range: {error}"
                    except ValueError:
                        return None  # not a date at all: the full validation says so
                if problem is None:
                    return None
                field = argument_path((*ancestors, parent)) or "query"
                message = f"The value of {field} {problem}."
                refusal = Invalid(field, message)
                rule.report_error(GraphQLError(message, node, original_error=refusal))
                return self.BREAK

        visit(context.document, TypeInfoVisitor(type_info, Literals()))


class OutOfRange(ValueError):
    pass


def bounded(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse``, refusing a value outside ``MIN_DATE`` … ``MAX_DATE`` (a DateTime by its own
    clock, so that no offset can carry it past the bounds)."""

    def within(text: str) -> Any:
        value = parse(text)
        day = value.date() if isinstance(value, dt.datetime) else value
        if not MIN_DATE <= day <= MAX_DATE:
            raise OutOfRange(f"dates must fall from {MIN_DATE} to {MAX_DATE}")
        return value

    return within


BOUNDED_PARSERS = {
    "Date": bounded(dt.date.fromisoformat),
    "DateTime": bounded(dateutil.parser.isoparse),
}


def bounded_scalar(name: str, description: str, origin: type) -> ScalarDefinition:
    """Strawberry's own ``name`` scalar (the same name, description and output), whose input
    must lie within the bounds."""
    return ScalarDefinition(
        name=name,
        description=description,
        specified_by_url=None,
        serialize=methodcaller("isoformat"),
        parse_value=wrap_parser(BOUNDED_PARSERS[name], name),
        parse_literal=None,
        origin=origin,
    )


SCALAR_OVERRIDES = {
    dt.date: bounded_scalar("Date", "Date (isoformat)", dt.date),
    dt.datetime: bounded_scalar("DateTime", "Date with time (isoformat)", dt.datetime),
}
