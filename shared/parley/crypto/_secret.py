"""Base classes for msgspec Structs that hold secrets: their repr shows public fields only.

msgspec's generated repr would print every field, keys included; these overrides do not
depend on ``repr_omit_defaults`` or any other Struct option.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


def _secret_repr(self: SecretStruct | FrozenSecretStruct) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._public)
    sep = ", " if shown else ""
    return f"{type(self).__name__}({shown}{sep}<secrets hidden>)"


def _rich_repr(self: SecretStruct | FrozenSecretStruct) -> list[tuple[str, object]]:
    return [(name, getattr(self, name)) for name in self._public]


class SecretStruct(msgspec.Struct):
    """Mutable Struct whose ``repr``/``str`` list only the fields named in ``_public``."""

    _public: ClassVar[tuple[str, ...]] = ()
    __repr__ = _secret_repr
    __str__ = _secret_repr
    __rich_repr__ = _rich_repr


class FrozenSecretStruct(msgspec.Struct, frozen=True):
    """Frozen variant of :class:`SecretStruct`."""

    _public: ClassVar[tuple[str, ...]] = ()
    __repr__ = _secret_repr
    __str__ = _secret_repr
    __rich_repr__ = _rich_repr
