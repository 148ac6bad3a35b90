"""user_id -> username, as far as this profile has seen (lookups, contacts, requests), sealed
in the profile (``names.bin``) so later runs can show names for people we only received from
once we learned their name."""

from __future__ import annotations

import msgspec

from parley_client.cli.profile import NAMES, Profile


class Names:
    def __init__(self, profile: Profile, own: tuple[str, str]) -> None:
        self.profile = profile
        data = profile.unseal(NAMES)
        self.by_id: dict[str, str] = (
            msgspec.msgpack.decode(data, type=dict[str, str]) if data else {}
        )
        self._dirty = False
        self.learn(*own)

    def learn(self, user_id: str, username: str) -> None:
        if self.by_id.get(user_id) != username:
            self.by_id[user_id] = username
            self._dirty = True

    def id_of(self, username: str) -> str | None:
        for uid, name in self.by_id.items():
            if name == username:
                return uid
        return None

    def show(self, user_id: str) -> str:
        """The username, or a short id for someone never named to us."""
        return self.by_id.get(user_id) or f"<{user_id[:8]}>"

    def save(self) -> None:
        if self._dirty:
            self.profile.seal(NAMES, msgspec.msgpack.encode(self.by_id))
            self._dirty = False
