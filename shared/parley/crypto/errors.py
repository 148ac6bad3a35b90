"""Exceptions of the crypto core. Messages never contain secret bytes."""

from __future__ import annotations


class CryptoError(Exception):
    """Any primitive or protocol failure. The operation was aborted; state is unchanged."""


class DecryptionFailed(CryptoError):
    """AEAD authentication failed (wrong key, tampered data)."""


class BadSignature(CryptoError):
    """An Ed25519 signature did not verify."""


class MalformedMessage(CryptoError):
    """Wrong length, version byte or structure."""


class DuplicateMessage(CryptoError):
    """The message was already decrypted (its key is gone): drop silently, no reset."""


class TooManySkipped(CryptoError):
    """The message is further ahead than MAX_SKIP / MAX_GROUP_SKIP allows."""


class UnknownPreKey(CryptoError):
    """PreKeyMessage names an unknown signed prekey or a used/unknown one-time prekey."""


class ReplayedPreKey(CryptoError):
    """PreKeyMessage reuses an ephemeral key already seen for this signed prekey."""


class NoSession(CryptoError):
    """No session (or no sender-key state) can decrypt the message."""


class UntrustedIdentity(CryptoError):
    """The identity is not the pinned one, or a device is not in the verified device list."""


class KeyChanged(UntrustedIdentity):
    """A contact's account identity key changed; sending blocked until accepted."""


class Rollback(CryptoError):
    """A device list with a version not newer than the stored one, and different content."""


class SendingBlocked(CryptoError):
    """Sending to this contact is blocked until the user accepts a key change."""
