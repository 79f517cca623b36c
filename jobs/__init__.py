"""arq jobs: plain ``async def job(ctx, ...)`` functions that call services."""
