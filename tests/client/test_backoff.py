from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.client.backoff import backoff_ceiling, backoff_delay

SETTINGS = settings(max_examples=50, deadline=None)


@SETTINGS
@given(st.integers(1, 10_000), st.floats(0, 1, exclude_max=True))
def test_delay_lies_in_the_jitter_band_and_under_the_cap(attempt: int, r: float) -> None:
    d = backoff_delay(attempt, base=0.5, cap=30.0, random=lambda: r)
    c = min(30.0, 0.5 * 2 ** min(attempt - 1, 62))
    assert c / 2 <= d <= c <= 30.0


def test_ceiling_doubles_until_the_cap() -> None:
    assert [backoff_ceiling(n, base=0.5, cap=30.0) for n in range(1, 9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0,
    ]  # fmt: skip


def test_jitter_comes_from_the_injected_random() -> None:
    lo = backoff_delay(4, random=lambda: 0.0)
    hi = backoff_delay(4, random=lambda: 0.999)
    assert lo == 2.0 and 3.99 < hi < 4.0
