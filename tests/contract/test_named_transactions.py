"""Every write transaction is reported under its name (for logs and metrics), failed ones too."""

from __future__ import annotations

import pytest

from parley_server.store import transactions
from parley_server.store.base import Store, UsernameTaken

NOW = 1_800_000_000_000


async def test_writes_are_observed_by_name(store: Store) -> None:
    seen: list[tuple[str, str, float, bool]] = []
    transactions.add_observer(lambda *args: seen.append(args))
    try:
        u = await store.create_user("named", b"h", NOW)
        with pytest.raises(UsernameTaken):
            await store.create_user("named", b"h", NOW)
        await store.create_group(u.user_id, [], b"", b"c" * 16, NOW)
    finally:
        transactions._observers.clear()
    # an engine may also report the steps of a transaction, as "<transaction>/<step>"
    names = [(name, ok) for _engine, name, _s, ok in seen if "/" not in name]
    assert names == [
        ("accounts.create_user", True),
        ("accounts.create_user", False),
        ("conversations.create_group", True),
    ]
    assert all(s >= 0 for *_x, s, _ok in seen)
