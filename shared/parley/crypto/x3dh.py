"""X3DH key agreement (docs/imv1.md §4.1), Ed25519 identity keys via the birational map."""

from __future__ import annotations

from parley.crypto import backend
from parley.crypto._secret import FrozenSecretStruct
from parley.crypto.constants import X3DH_F, X3DH_INFO, X3DH_SALT, X3DH_SK_LEN
from parley.crypto.kdf import hkdf
from parley.crypto.keys import Ed25519KeyPair, Rng, X25519KeyPair, enc_ed


class X3DHResult(FrozenSecretStruct, frozen=True):
    sk: bytes
    ad: bytes
    ek_pub: bytes

    _public = ("ek_pub",)


def kdf(km: bytes) -> bytes:
    return hkdf(X3DH_F + km, X3DH_SALT, X3DH_INFO, X3DH_SK_LEN)


def associated_data(ik_a_pub: bytes, ik_b_pub: bytes) -> bytes:
    """AD = EncEd(IK_A) || EncEd(IK_B) (66 B)."""
    return enc_ed(ik_a_pub) + enc_ed(ik_b_pub)


def initiate(
    ik_a: Ed25519KeyPair,
    ik_b_pub: bytes,
    spk_b_pub: bytes,
    opk_b_pub: bytes | None,
    *,
    ek: X25519KeyPair | None = None,
    rng: Rng | None = None,
) -> X3DHResult:
    """Initiator side. The caller MUST have run the bundle checks (bundle.verify_bundle).

    ``ek`` exists for test vectors; normal callers leave it None (fresh EK from ``rng``).
    """
    if ek is None:
        ek = X25519KeyPair.generate(rng)
    ikx_b = backend.ed25519_pk_to_x25519(ik_b_pub)
    km = (
        backend.x25519(ik_a.x25519_priv(), spk_b_pub)
        + backend.x25519(ek.priv, ikx_b)
        + backend.x25519(ek.priv, spk_b_pub)
    )
    if opk_b_pub is not None:
        km += backend.x25519(ek.priv, opk_b_pub)
    return X3DHResult(sk=kdf(km), ad=associated_data(ik_a.pub, ik_b_pub), ek_pub=ek.pub)


def respond(
    ik_b: Ed25519KeyPair,
    spk_priv: bytes,
    opk_priv: bytes | None,
    ik_a_pub: bytes,
    ek_a_pub: bytes,
) -> X3DHResult:
    """Responder side: the same SK and AD from Bob's private keys."""
    ikx_a = backend.ed25519_pk_to_x25519(ik_a_pub)
    km = (
        backend.x25519(spk_priv, ikx_a)
        + backend.x25519(ik_b.x25519_priv(), ek_a_pub)
        + backend.x25519(spk_priv, ek_a_pub)
    )
    if opk_priv is not None:
        km += backend.x25519(opk_priv, ek_a_pub)
    return X3DHResult(sk=kdf(km), ad=associated_data(ik_a_pub, ik_b.pub), ek_pub=ek_a_pub)
