"""Key pairs and key encodings (docs/imv1.md §0, §3.1)."""

from __future__ import annotations

from collections.abc import Callable

from parley.crypto import backend
from parley.crypto._secret import FrozenSecretStruct
from parley.crypto.constants import KT_ED25519, KT_X25519
from parley.crypto.errors import MalformedMessage

Rng = Callable[[int], bytes]
"""Injectable randomness: ``rng(n) -> n bytes``. Defaults to the backend CSPRNG."""


def rng_or_default(rng: Rng | None) -> Rng:
    return backend.random_bytes if rng is None else rng


def enc_x(pk: bytes) -> bytes:
    """EncX: 0x05 || X25519 public key (33 B)."""
    _check_len(pk, 32, "X25519 public key")
    return bytes((KT_X25519,)) + pk


def enc_ed(pk: bytes) -> bytes:
    """EncEd: 0xED || Ed25519 public key (33 B)."""
    _check_len(pk, 32, "Ed25519 public key")
    return bytes((KT_ED25519,)) + pk


def _check_len(b: bytes, n: int, what: str) -> None:
    if len(b) != n:
        raise MalformedMessage(f"{what} must be {n} bytes")


class X25519KeyPair(FrozenSecretStruct, frozen=True):
    priv: bytes
    pub: bytes

    _public = ("pub",)

    @classmethod
    def from_priv(cls, priv: bytes) -> X25519KeyPair:
        _check_len(priv, 32, "X25519 private key")
        return cls(priv=priv, pub=backend.x25519_base(priv))

    @classmethod
    def generate(cls, rng: Rng | None = None) -> X25519KeyPair:
        return cls.from_priv(rng_or_default(rng)(32))


class Ed25519KeyPair(FrozenSecretStruct, frozen=True):
    """Ed25519 key pair kept as its 32-byte seed plus the derived pk / sk64."""

    seed: bytes
    pub: bytes
    sk64: bytes

    _public = ("pub",)

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519KeyPair:
        _check_len(seed, 32, "Ed25519 seed")
        pk, sk = backend.ed25519_seed_keypair(seed)
        return cls(seed=seed, pub=pk, sk64=sk)

    @classmethod
    def generate(cls, rng: Rng | None = None) -> Ed25519KeyPair:
        return cls.from_seed(rng_or_default(rng)(32))

    def sign(self, msg: bytes) -> bytes:
        return backend.ed25519_sign(msg, self.sk64)

    def x25519_priv(self) -> bytes:
        """DH form of the identity key (birational map): clamp(SHA-512(seed)[0:32])."""
        return backend.ed25519_sk_to_x25519(self.sk64)

    def x25519_pub(self) -> bytes:
        return backend.ed25519_pk_to_x25519(self.pub)


# Roles (same structure, named for readability).
IdentityKeyPair = Ed25519KeyPair  # device identity IK, and account identity AIK


def verify(sig: bytes, msg: bytes, pk: bytes) -> bool:
    return backend.ed25519_verify(sig, msg, pk)


class SignedPreKey(FrozenSecretStruct, frozen=True):
    id: int
    priv: bytes
    pub: bytes
    sig: bytes
    created_at: int = 0

    _public = ("id", "pub", "created_at")

    @classmethod
    def generate(
        cls, ik: Ed25519KeyPair, spk_id: int, now: int = 0, rng: Rng | None = None
    ) -> SignedPreKey:
        kp = X25519KeyPair.generate(rng)
        return cls.from_priv(ik, spk_id, kp.priv, now)

    @classmethod
    def from_priv(cls, ik: Ed25519KeyPair, spk_id: int, priv: bytes, now: int = 0) -> SignedPreKey:
        kp = X25519KeyPair.from_priv(priv)
        return cls(id=spk_id, priv=kp.priv, pub=kp.pub, sig=ik.sign(enc_x(kp.pub)), created_at=now)


def verify_spk(ik_pub: bytes, spk_pub: bytes, sig: bytes) -> bool:
    """X3DH ``Sig(IK_B, Encode(SPK_B))`` check with RFC 8032 Ed25519."""
    return len(spk_pub) == 32 and backend.ed25519_verify(sig, enc_x(spk_pub), ik_pub)


class OneTimePreKey(FrozenSecretStruct, frozen=True):
    id: int
    priv: bytes
    pub: bytes

    _public = ("id", "pub")

    @classmethod
    def generate(cls, opk_id: int, rng: Rng | None = None) -> OneTimePreKey:
        kp = X25519KeyPair.generate(rng)
        return cls(id=opk_id, priv=kp.priv, pub=kp.pub)
