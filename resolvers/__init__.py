"""Turn GraphQL arguments and the request context into service calls."""
