"""The metrics hook engines report their round-trips through (``metrics.backend_roundtrip``)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from parley_server import metrics


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_backend_roundtrip_times_calls_and_counts_failures() -> None:
    labels = {"backend": "s3", "op": "unit_test_op"}
    count0 = _value("parley_backend_roundtrip_seconds_count", **labels)
    errors0 = _value("parley_backend_errors_total", **labels)
    with metrics.backend_roundtrip("s3", "unit_test_op"):
        pass
    with pytest.raises(ConnectionError), metrics.backend_roundtrip("s3", "unit_test_op"):
        raise ConnectionError("refused")
    assert _value("parley_backend_roundtrip_seconds_count", **labels) == count0 + 2
    assert _value("parley_backend_errors_total", **labels) == errors0 + 1


def test_errors_by_code_also_count_rate_limit_refusals() -> None:
    before = _value("parley_rate_limit_refusals_total", transport="ws")
    metrics.count_error("ws", "rate_limited")
    metrics.count_error("ws", "invalid")
    assert _value("parley_rate_limit_refusals_total", transport="ws") == before + 1
    assert _value("parley_errors_total", transport="ws", code="invalid") >= 1
