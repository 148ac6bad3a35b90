"""The persisted ``E2EState`` carries its format version; ``loads`` migrates older formats step
by step and refuses newer ones (a state written by a later version is never misread)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from parley.client.e2e import identity
from parley.client.e2e import state as st_mod

NOW = 1_700_000_000_000


def test_a_state_records_the_format_that_wrote_it() -> None:
    st = identity.new_device("u", 1, aik_seed=None, now=NOW)
    raw = msgspec.msgpack.decode(st_mod.dumps(st))
    assert raw["format"] == st_mod.FORMAT_VERSION == 1
    again = st_mod.loads(st_mod.dumps(st))
    assert again.own.ik_seed == st.own.ik_seed


def test_a_state_written_before_the_field_existed_is_format_1() -> None:
    st = identity.new_device("u", 1, aik_seed=None, now=NOW)
    raw = msgspec.msgpack.decode(st_mod.dumps(st))
    del raw["format"]
    assert st_mod.loads(msgspec.msgpack.encode(raw)).own.user_id == "u"


def test_an_older_format_is_migrated_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    st = identity.new_device("u", 1, aik_seed=None, now=NOW)
    st.strict = True
    blob = st_mod.dumps(st)  # format 1
    seen: list[int] = []

    def one_to_two(raw: dict[str, Any]) -> dict[str, Any]:
        seen.append(raw["format"])
        raw["strict"] = not raw["strict"]  # a change of meaning, say
        return raw

    monkeypatch.setattr(st_mod, "FORMAT_VERSION", 2)
    again = st_mod.loads(blob, {1: one_to_two})
    assert seen == [1] and again.strict is False and again.format == 2
    with pytest.raises(st_mod.StateFormatError):
        st_mod.loads(blob, {})  # no step from 1: refused, not misread


def test_a_newer_format_is_refused() -> None:
    st = identity.new_device("u", 1, aik_seed=None, now=NOW)
    raw = msgspec.msgpack.decode(st_mod.dumps(st))
    raw["format"] = st_mod.FORMAT_VERSION + 1
    with pytest.raises(st_mod.StateFormatError):
        st_mod.loads(msgspec.msgpack.encode(raw))
