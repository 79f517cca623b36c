"""The ``rollcall`` command: composition root for the API, the worker and the tooling."""
