"""Rollcall's domain: attendance, metrics and access rules, plus adapters for PostgreSQL and Redis.

Nothing in this package imports strawberry or starlette.
"""
