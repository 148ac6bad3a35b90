"""Trust and key commands: verify (safety numbers), backup create / restore."""

from __future__ import annotations

import os

import click

from parley.crypto.errors import CryptoError
from parley.crypto.safety import TrustState, display
from parley_client.cli import render
from parley_client.cli.command import ParleyCommand, ParleyGroup
from parley_client.cli.conversations import all_conversations, user_id_of
from parley_client.cli.errors import CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.profile import KDF_LIMITS, kdf_choice
from parley_client.cli.prompts import secret
from parley_client.cli.runtime import Ctx, connected, guard, run

BACKUP_PASSPHRASE_ENV = "PARLEY_BACKUP_PASSPHRASE"
RECOVERY_KEY_ENV = "PARLEY_RECOVERY_KEY"


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Compare the number with the one your contact sees (in person or on a call);
if they match, mark the contact verified. After a contact's key changed,
sending is blocked until you accept the new number.
Examples:
  parley verify bob
  parley verify bob --mark
  parley verify bob --accept-change""",
)
@click.argument("user")
@click.option("--mark", is_flag=True, help="Mark the contact verified (numbers matched).")
@click.option("--accept-change", is_flag=True, help="Accept a changed safety number.")
@click.pass_obj
@guard
def verify(ctx: Ctx, user: str, mark: bool, accept_change: bool) -> None:
    """Show the safety number with USER; --mark to verify."""

    async def go() -> tuple[str, str, str]:
        names = ctx.names()
        async with connected(ctx) as (client, _, meta):
            api = AccountApi(meta.server, ctx.logged_in()[2].token)
            uid = await user_id_of(api, names, user)
            if uid == meta.user_id:
                raise CliError("that is you: verify someone else")
            await client.refresh_devlist(uid)
            contact = client.st.contacts.get(uid)
            if contact is None or contact.trust is None:
                raise CliError(f"{user} has no published keys yet (they must log in once)")
            if accept_change:
                client.accept_key_change(uid)
            if mark:
                client.mark_verified(uid)
            number = client.safety_number(uid)
            state = client.st.contacts[uid].trust.state  # type: ignore[union-attr]
        names.save()
        return user.lower(), display(number), _state_text(state)

    name, number, state = run(go)
    render.ok(f"Safety number with {name}:")
    groups = number.split(" ")
    render.ok("  " + " ".join(groups[:6]))
    render.ok("  " + " ".join(groups[6:]))
    render.ok(f"Status: {state}")


def _state_text(state: TrustState) -> str:
    return {
        TrustState.UNVERIFIED: "not verified",
        TrustState.VERIFIED: "verified",
        TrustState.CHANGED_BLOCKED: "CHANGED: sending is blocked until you run --accept-change",
    }[state]


@click.group(cls=ParleyGroup)
def backup() -> None:
    """Back up message keys on the server (encrypted), or restore them."""


@backup.command(
    "create",
    epilog="""\b
Without --passphrase a recovery key is generated and printed ONCE: write it down.
Examples:
  parley backup create
  parley backup create --passphrase""",
)
@click.option("--passphrase", is_flag=True, help="Protect the backup with a passphrase instead.")
@click.pass_obj
@guard
def backup_create(ctx: Ctx, passphrase: bool) -> None:
    """Start a new key backup (replaces any previous one)."""
    secret = _backup_passphrase(confirm=True) if passphrase else None
    ops, mem = KDF_LIMITS[kdf_choice() if secret is not None else "moderate"]

    async def go() -> str:
        async with connected(ctx) as (client, _, _):
            return str(await client.create_backup(passphrase=secret, opslimit=ops, memlimit=mem))

    text = run(go)
    if secret is None:
        render.ok("Recovery key (shown only now; write it down, it is NOT stored anywhere):")
        render.ok(f"  {text}")
    else:
        render.ok("Backup created; restore it with 'parley backup restore --passphrase'.")


@backup.command(
    "restore",
    epilog="""\b
Examples:
  parley backup restore            (prompts for the recovery key)
  parley backup restore --passphrase""",
)
@click.option("--passphrase", is_flag=True, help="The backup uses a passphrase.")
@click.pass_obj
@guard
def backup_restore(ctx: Ctx, passphrase: bool) -> None:
    """Restore message keys from the server backup into this device."""
    secret = _backup_passphrase(confirm=False) if passphrase else None
    key = None if passphrase else _recovery_key()

    async def go() -> int:
        async with connected(ctx) as (client, _, _):
            cids = [c.conversation_id for c in await all_conversations(client)]
            n = 0
            try:
                for i in range(0, len(cids), 100):  # the server takes <= 100 ids per call
                    n += int(await client.restore_backup(
                        cids[i : i + 100], recovery_key=key, passphrase=secret
                    ))  # fmt: skip
            except CryptoError:
                raise CliError("wrong recovery key or passphrase") from None
            except Exception as exc:
                if getattr(exc, "status", None) == 404:
                    raise CliError(
                        "there is no key backup on the server: create one with "
                        "'parley backup create'"
                    ) from None
                raise
            return n

    render.ok(f"Restored {run(go)} message key(s).")


def _backup_passphrase(*, confirm: bool) -> str:
    env = os.environ.get(BACKUP_PASSPHRASE_ENV)
    if env:
        return env
    return secret("Backup passphrase", confirm=confirm, hint=BACKUP_PASSPHRASE_ENV)


def _recovery_key() -> str:
    env = os.environ.get(RECOVERY_KEY_ENV)
    if env:
        return env
    return secret("Recovery key", hint=RECOVERY_KEY_ENV)


COMMANDS: list[click.Command] = [verify, backup]
