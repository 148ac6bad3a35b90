"""Account commands: register, login, logout, devices."""

from __future__ import annotations

import sys

import click

from parley_client.cli import render
from parley_client.cli.command import ParleyCommand
from parley_client.cli.errors import CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.profile import (
    Account,
    Profile,
    ProfileMeta,
    Secrets,
    kdf_choice,
    read_passphrase,
)
from parley_client.cli.prompts import secret
from parley_client.cli.runtime import Ctx, api, connected, guard, map_client_error, run
from parley_client.cli.secure_client import keep_account, open_secure


def _password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("no password on standard input")
        return line
    return secret("Password", confirm=confirm, hint="--password-stdin")


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley register alice
  printf '%s\\n' "$PW" | parley register bot1 --password-stdin""",
)
@click.argument("username")
@password_stdin
@click.pass_obj
@guard
def register(ctx: Ctx, username: str, password_stdin: bool) -> None:
    """Create an account (the password is prompted twice)."""
    password = _password(password_stdin, confirm=True)
    reply = run(lambda: AccountApi(ctx.server).register(username.lower(), password))
    render.ok(f"Registered {reply.username}. Next: parley login {reply.username}")


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley login alice --device-name laptop
  PARLEY_PROFILE_PASSPHRASE=... parley login bot1 --password-stdin < pw.txt
  parley --profile ~/.parley-bot login bot1 --no-profile-passphrase""",
)
@click.argument("username")
@click.option(
    "--device-name", default="parley-cli", show_default=True, help="Name shown in 'devices'."
)
@password_stdin
@click.option(
    "--no-profile-passphrase",
    is_flag=True,
    help="Do not encrypt the profile with a passphrase (file permissions only).",
)
@click.option("--force", is_flag=True, help="Replace a profile that is already logged in.")
@click.pass_obj
@guard
def login(
    ctx: Ctx,
    username: str,
    device_name: str,
    password_stdin: bool,
    no_profile_passphrase: bool,
    force: bool,
) -> None:
    """Log in as a new device; keys stay in the encrypted profile."""
    profile = ctx.profile()
    profile.lock()
    kept: Account | None = None
    if profile.exists():
        old = profile.load_meta()
        if old.logged_in and not force:
            raise CliError(
                f"already logged in as {old.username} in {profile.path}: run 'parley logout' "
                "first (or use another --profile)"
            )
        if not old.logged_in and not force:
            profile.unlock(logged_out_ok=True)  # the passphrase of the kept account key
            kept = profile.account()
    kdf = kdf_choice()
    password = _password(password_stdin, confirm=False)
    reply = run(lambda: AccountApi(ctx.server).login(username.lower(), password, device_name))
    meta = ProfileMeta(
        server=ctx.server.rstrip("/"),
        username=username.lower(),
        user_id=reply.user_id,
        device_id=reply.device_id,
        device_name=device_name,
        protection="",
    )
    if kept is not None and kept.user_id == reply.user_id:
        profile.relogin(meta)  # same profile key; open_secure reuses the kept account key
        protected = meta.protection == "passphrase"
    else:
        passphrase = None if no_profile_passphrase else read_passphrase(confirm=True)
        profile.create(meta, passphrase, kdf)
        protected = passphrase is not None
    secrets = Secrets(token=reply.token)
    profile.save_secrets(secrets)
    ctx.adopt(profile, meta, secrets)
    render.ok(f"Logged in as {meta.username} (device {meta.device_id}, {device_name}).")
    if not protected:
        render.warn(
            f"The profile in {profile.path} has NO passphrase: your keys and session are "
            "protected only by file permissions (0600 files, 0700 directory)."
        )
    else:
        render.info(f"Profile {profile.path} is encrypted with your profile passphrase.")
    if kept is not None and kept.user_id == reply.user_id:
        render.info("Using the account identity key kept in this profile.")
    publish_keys(ctx)


def publish_keys(ctx: Ctx) -> None:
    """Create and publish this device's E2E keys now, so others can write to us at once."""

    async def go() -> None:
        async with connected(ctx):
            pass

    try:
        run(go)
    except CliError as err:
        render.warn(f"logged in, but the encryption keys are not published yet: {err.message}")
        return
    render.info("Encryption keys created and published.")


@click.command(
    cls=ParleyCommand,
    epilog="""\b
The profile keeps your account identity key (sealed) so that logging in
again with this profile keeps your safety numbers; --forget deletes it too.
Examples:
  parley logout
  parley logout --forget""",
)
@click.option("--forget", is_flag=True, help="Also delete the kept account identity key.")
@click.pass_obj
@guard
def logout(ctx: Ctx, forget: bool) -> None:
    """Log this device out on the server and delete its local data."""

    async def go() -> Profile:
        account, profile, meta = await api(ctx)
        secrets = ctx.logged_in()[2]
        try:  # first take this device out of our E2E device list: no one encrypts to it then
            client = open_secure(profile, secrets)
            try:
                keep_account(client, profile)
                if client.st.own.published_devlist:
                    await client.remove_device(meta.device_id)
            finally:
                await client.close()
        except Exception as exc:
            mapped = exc if isinstance(exc, CliError) else map_client_error(exc)
            why = mapped.message if mapped is not None else type(exc).__name__
            render.warn(f"the device list for end-to-end encryption was not updated: {why}")
        try:
            await account.logout()
        except CliError as err:
            if err.server_code not in ("unauthorized", "device_revoked"):  # else: clean up
                raise
        return profile

    profile = run(go)
    if forget:
        profile.wipe()
        render.ok(f"Logged out; the profile in {profile.path} was deleted.")
    else:
        profile.log_out()
        render.ok(f"Logged out; the account identity key stays sealed in {profile.path}.")


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley devices
  parley devices --revoke 3""",
)
@click.option("--revoke", type=int, metavar="ID", help="Log out another of your devices.")
@click.pass_obj
@guard
def devices(ctx: Ctx, revoke: int | None) -> None:
    """List your logged-in devices, or revoke one."""

    async def go() -> None:
        account, _, meta = await api(ctx)
        if revoke is None:
            render.devices(await account.devices())
            return
        if revoke == meta.device_id:
            raise CliError("that is this device: use 'parley logout'")
        await account.revoke(revoke)
        render.ok(f"Device {revoke} revoked.")
        try:
            async with connected(ctx) as (client, _, _):
                await client.remove_device(revoke)
        except Exception as exc:
            mapped = exc if isinstance(exc, CliError) else map_client_error(exc)
            why = mapped.message if mapped is not None else type(exc).__name__
            render.warn(f"the device list for end-to-end encryption was not updated: {why}")

    run(go)


COMMANDS = [register, login, logout, devices]
