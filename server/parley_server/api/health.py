"""Liveness probe for load balancers, orchestrators and the test harness."""

from __future__ import annotations

from litestar import get


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
