"""The HTTP edge: the strawberry view and its websocket handler, middleware, the access log and
metrics, health probes, the pages and GraphiQL's files, file downloads, uploads and the HTTP
cache of GETs. It serves the schema (``graph/``); nothing of the schema imports it (an
import-linter contract in pyproject.toml)."""
