"""Device linking (docs/imv1.md §3.5) through the server's relay: ``parley link`` on the new
device prints an ``imlink:1:...`` code and waits; ``parley link-accept CODE`` on a device that
is already logged in sends it the account key (sealed to the code's key) and a one-time login.
The new profile then holds the same account identity key: safety numbers stay the same."""

from __future__ import annotations

import click

from parley.crypto.constants import PROV_TTL
from parley_client.cli import render
from parley_client.cli.command import ParleyCommand
from parley_client.cli.errors import CliError
from parley_client.cli.profile import (
    ProfileMeta,
    Secrets,
    kdf_choice,
    read_passphrase,
)
from parley_client.cli.runtime import CONNECT_TIMEOUT_S, Ctx, connected, guard, run
from parley_client.cli.secure_client import keep_account
from parley_client.e2e_client import E2EClient


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley --profile ~/.parley-laptop link --device-name laptop
  (then, on a device that is logged in: parley link-accept 'imlink:1:...')""",
)
@click.option(
    "--device-name", default="parley-cli", show_default=True, help="Name shown in 'devices'."
)
@click.option(
    "--timeout",
    type=click.FloatRange(1, PROV_TTL / 1000),
    default=PROV_TTL / 1000,
    show_default=True,
    help="Seconds to wait for the other device.",
)
@click.option(
    "--no-profile-passphrase",
    is_flag=True,
    help="Do not encrypt the profile with a passphrase (file permissions only).",
)
@click.option("--force", is_flag=True, help="Replace a profile that is already logged in.")
@click.pass_obj
@guard
def link(
    ctx: Ctx, device_name: str, timeout: float, no_profile_passphrase: bool, force: bool
) -> None:
    """Become a new device of an account that is logged in elsewhere (no password)."""
    profile = ctx.profile()
    profile.lock()
    if profile.exists() and profile.load_meta().logged_in and not force:
        raise CliError(
            f"already logged in in {profile.path}: run 'parley logout' first (or use another "
            "--profile)"
        )
    kdf = kdf_choice()
    passphrase = None if no_profile_passphrase else read_passphrase(confirm=True)
    server = ctx.server.rstrip("/")

    def show(code: str) -> None:
        render.info("On a device that is logged in, run:  parley link-accept CODE  with CODE:")
        click.echo(code)  # alone on stdout, unwrapped: scripts read this line
        render.info(f"Waiting up to {timeout:.0f} s for it...")

    async def go() -> ProfileMeta:
        from parley.protocol.provisioning import LinkLoginReply
        from parley_client.cli.sealed_store import SealedE2EStorage, SealedLocalStore
        from parley_client.e2e_storage import E2EStorage
        from parley_client.store import SqliteLocalStore

        metas: list[ProfileMeta] = []

        def open_storage(login: LinkLoginReply) -> tuple[E2EStorage, SqliteLocalStore]:
            meta = ProfileMeta(
                server=server, username=login.username, user_id=login.user_id, device_id=login.device_id,
                device_name=device_name, protection="",
            )  # fmt: skip
            profile.create(meta, passphrase, kdf)
            secrets = Secrets(token=login.token)
            profile.save_secrets(secrets)
            ctx.adopt(profile, meta, secrets)
            metas.append(meta)
            return SealedE2EStorage(profile), SealedLocalStore(profile)

        client = await E2EClient.link_new_device(
            server, device_name, show, open_storage=open_storage, timeout=timeout
        )
        try:
            await client.start()  # publishes the next device list (with us) and our keys
            keep_account(client, profile)
            await client.wait_online(CONNECT_TIMEOUT_S)
        finally:
            await client.close()
        return metas[0]

    meta = run(go)
    render.ok(f"Linked as {meta.username} (device {meta.device_id}, {device_name}).")
    if passphrase is None:
        render.warn(
            f"The profile in {profile.path} has NO passphrase: your keys and session are "
            "protected only by file permissions (0600 files, 0700 directory)."
        )


@click.command(
    "link-accept",
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley link-accept 'imlink:1:...'
  parley link-accept 'imlink:1:...' --yes""",
)
@click.argument("code")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
@guard
def link_accept(ctx: Ctx, code: str, yes: bool) -> None:
    """Link the device showing CODE to your account (it can then read your chats)."""
    from parley.crypto import provisioning
    from parley.crypto.errors import CryptoError

    try:
        provisioning.parse_qr(code.strip())
    except CryptoError:
        raise CliError("that is not a link code (it starts with imlink:1:)", 2) from None
    _, meta, _ = ctx.logged_in()
    if not yes and not _confirmed(meta.username):
        raise CliError("not linked (in scripts, pass --yes)")

    async def go() -> None:
        async with connected(ctx) as (client, _, _):
            await client.accept_link(code.strip())

    run(go)
    render.ok("Linked: the new device finishes setting itself up now.")


def _confirmed(username: str) -> bool:
    try:
        return click.confirm(
            f"Link a new device to {username}? It gets your account key and can read your "
            "messages from now on",
            default=False,
            err=True,
        )
    except click.Abort:  # no answer (end of input)
        return False


COMMANDS = [link, link_accept]
