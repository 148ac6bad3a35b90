"""Liveness probe for load balancers, orchestrators and the test harness: says which node
answered and which engines it runs (behind a load balancer, the node a client reached)."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz(state: State) -> dict[str, Any]:
    parley = state.get("parley")
    stores = parley.services.stores if parley is not None else None
    broker = state.get("broker")
    return {
        "status": "ok",
        "node": state.get("node_id", ""),
        "store": stores.engine if stores is not None else "",
        "broker": type(broker).__name__ if broker is not None else "",
    }
