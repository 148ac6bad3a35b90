"""Base class for msgspec Structs that hold secrets: their repr shows public fields only."""

from __future__ import annotations

from typing import ClassVar

import msgspec


class SecretStruct(msgspec.Struct):
    """A Struct whose ``repr`` lists only the fields named in ``_public``.

    msgspec's generated repr would print every field, keys included; this override does not
    depend on ``repr_omit_defaults`` or any other Struct option.
    """

    _public: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._public)
        return f"{type(self).__name__}({shown}, <secrets hidden>)"

    def __rich_repr__(self) -> list[tuple[str, object]]:
        return [(name, getattr(self, name)) for name in self._public]

    __str__ = __repr__
