"""The GraphQL edge: strawberry types, the schema, the Starlette app."""
