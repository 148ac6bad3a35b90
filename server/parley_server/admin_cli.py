"""``parley admin``: manage a Parley server through its store, without touching the database.

Every command opens the configured store (``--data-dir`` / ``PARLEY_*``, as ``parley serve``
does) next to a running server, changes it through the store interfaces and exits. Running
servers pick the changes up by themselves: a disabled or deleted account is refused at once and
its open sockets close with 4004 within ``admin_poll_s`` (see ``service/admin.py``).
``backup`` copies online; ``restore`` needs the server stopped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import shutil
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from parley_server.config import Settings, load_settings
from parley_server.redis_migration import migrate_command

T = TypeVar("T")
DB_NAME = "parley.db"
BLOBS_DIR = "blobs"
MANIFEST = "parley-backup.json"


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def _run(settings: Settings, job: Callable[[Any], Awaitable[T]]) -> T:
    """Open the stores, build the services (as a server would, with no sockets), run ``job``."""

    async def main() -> T:
        from parley_server.fanout.local import LocalBroker
        from parley_server.service.context import Services
        from parley_server.service.dispatch import Dispatcher
        from parley_server.store.stores import open_stores

        stores = await open_stores(settings)
        try:
            return await job(
                Dispatcher(Services(stores=stores, broker=LocalBroker(), settings=settings))
            )
        finally:
            await stores.close()

    return asyncio.run(main())


async def _user_id(app: Any, who: str) -> str:
    from parley_server.service.accounts import normalize_username

    user = await app.services.store.get_user_by_name(normalize_username(who))
    if user is None:
        user = await app.services.store.get_user(who)
    if user is None:
        raise click.ClickException(f"no such user: {who}")
    return str(user.user_id)


def _ts(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data directory of the server [PARLEY_DATA_DIR or ./parley-data].",
)
@click.pass_context
def admin(ctx: click.Context, data_dir: str | None) -> None:
    """Manage accounts, registration, backups (uses the server's store; PARLEY_* settings)."""
    try:
        ctx.obj = load_settings({"data_dir": data_dir})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


# --- users ------------------------------------------------------------------------------------
@admin.group()
def users() -> None:
    """List, inspect, disable, enable or delete accounts."""


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """Every account, by username."""
    from parley_server.store.admin import AdminUserRow, admin_store_of

    async def job(app: Any) -> list[AdminUserRow]:
        store = admin_store_of(app.services.stores)
        out: list[AdminUserRow] = []
        after = ""
        while page := await store.list_users(after, 500):
            out.extend(page)
            after = page[-1].username
        return out

    for row in _run(_settings(ctx), job):
        if as_json:
            click.echo(json.dumps({f: getattr(row, f) for f in row.__struct_fields__}))
        else:
            click.echo(
                f"{row.username:32} {row.user_id}  {row.status or 'active':8} "
                f"devices={row.devices} created={_ts(row.created)} last_seen={_ts(row.last_seen)}"
            )


@users.command("show")
@click.argument("who")
@click.pass_context
def users_show(ctx: click.Context, who: str) -> None:
    """One account (by username or user id) and its devices."""
    from parley_server.store.admin import admin_store_of

    async def job(app: Any) -> dict[str, Any]:
        uid = await _user_id(app, who)
        user = await app.services.store.get_user(uid)
        status = await admin_store_of(app.services.stores).status(uid)
        devices = await app.services.store.list_devices(uid)
        return {
            "user_id": uid,
            "username": user.username,
            "created": _ts(user.created),
            "status": status.value if status else "active",
            "devices": [
                {"device_id": d.device_id, "name": d.name, "last_seen": _ts(d.last_seen)}
                for d in devices
            ],
        }

    click.echo(json.dumps(_run(_settings(ctx), job), indent=2))


def _set_status(ctx: click.Context, who: str, status: str | None) -> None:
    from parley_server.store.admin import AccountStatus

    async def job(app: Any) -> bool:
        uid = await _user_id(app, who)
        ok: bool = await app.operators.set_status(uid, AccountStatus(status) if status else None)
        return ok

    if not _run(_settings(ctx), job):
        raise click.ClickException("that account was deleted; it cannot change any more")
    click.echo(f"{who}: {status or 'enabled'}")


@users.command("disable")
@click.argument("who")
@click.pass_context
def users_disable(ctx: click.Context, who: str) -> None:
    """Refuse the account everywhere; its open sockets close with 4004 (reversible)."""
    _set_status(ctx, who, "disabled")


@users.command("enable")
@click.argument("who")
@click.pass_context
def users_enable(ctx: click.Context, who: str) -> None:
    """Undo ``disable``."""
    _set_status(ctx, who, None)


@users.command("delete")
@click.argument("who")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def users_delete(ctx: click.Context, who: str, yes: bool) -> None:
    """Delete an account for good: devices, keys and queued items go; it leaves its groups;
    its messages become tombstones; other members keep their conversations."""
    if not yes:
        click.confirm(f"Delete {who} for good?", abort=True)

    async def job(app: Any) -> Any:
        return await app.operators.delete_user(await _user_id(app, who))

    report = _run(_settings(ctx), job)
    click.echo(
        f"{who}: deleted (devices {report.devices}, queued items {report.to_device}, "
        f"messages tombstoned {report.messages_tombstoned})"
    )


@admin.command("reset-password")
@click.argument("who")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
@click.option(
    "--keep-sessions", is_flag=True, help="Keep the account's devices signed in (default: revoke)."
)
@click.pass_context
def reset_password(ctx: click.Context, who: str, password_stdin: bool, keep_sessions: bool) -> None:
    """Set a new password (printed when generated); signs every device out unless told not to."""
    from parley_server.store.admin import admin_store_of

    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(12)

    async def job(app: Any) -> int:
        uid = await _user_id(app, who)
        user = await app.services.store.get_user(uid)
        accounts = app.accounts
        accounts.check_password_strength(user.username, password)
        password_hash = await accounts._hash(password)
        revoked: int = await admin_store_of(app.services.stores).set_password(
            uid, password_hash, revoke=not keep_sessions
        )
        return revoked

    from parley_server.service.errors import ServiceError

    try:
        revoked = _run(_settings(ctx), job)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    if not password_stdin:
        click.echo(f"new password: {password}")
    click.echo(f"{who}: password reset; devices signed out: {revoked}")


# --- registration -----------------------------------------------------------------------------
@admin.command("registration")
@click.argument("mode", required=False, type=click.Choice(["open", "invite", "closed"]))
@click.pass_context
def registration(ctx: click.Context, mode: str | None) -> None:
    """Show or set who may register: open, invite (one-time links) or closed."""
    from parley_server.store.admin import RegistrationMode, admin_store_of

    async def job(app: Any) -> str:
        if mode is not None:
            await admin_store_of(app.services.stores).set_registration_mode(RegistrationMode(mode))
        current: RegistrationMode = await app.operators.mode()
        return current.value

    click.echo(f"registration: {_run(_settings(ctx), job)}")


@admin.group()
def invite() -> None:
    """One-time registration invites."""


@invite.command("create")
@click.option("--ttl-hours", type=float, default=None, help="Valid for this long [7 days].")
@click.pass_context
def invite_create(ctx: click.Context, ttl_hours: float | None) -> None:
    """Print a one-time invite link (and its code) for registration by invite."""

    async def job(app: Any) -> tuple[str, int, str]:
        code, expires = await app.operators.create_invite(
            None if ttl_hours is None else ttl_hours * 3600
        )
        return code, expires, app.operators.invite_link(code)

    code, expires, link = _run(_settings(ctx), job)
    click.echo(f"invite link: {link}")
    click.echo(f"invite code: {code}")
    click.echo(f"expires:     {_ts(expires)}")


# --- stats, gc --------------------------------------------------------------------------------
@admin.command("stats")
@click.pass_context
def stats(ctx: click.Context) -> None:
    """Counts of accounts, devices, conversations, messages, queues; database size."""
    from parley_server.store.admin import admin_store_of

    settings = _settings(ctx)

    async def job(app: Any) -> dict[str, Any]:
        s = await admin_store_of(app.services.stores).stats()
        out: dict[str, Any] = {f: getattr(s, f) for f in s.__struct_fields__}
        out["registration"] = (await app.operators.mode()).value
        return out

    out = _run(settings, job)
    db = settings.data_path / DB_NAME
    out["database_bytes"] = sum(
        p.stat().st_size for p in db.parent.glob(DB_NAME + "*") if p.is_file()
    )
    click.echo(json.dumps(out, indent=2))


@admin.command("gc")
@click.pass_context
def gc(ctx: click.Context) -> None:
    """Delete expired to-device items, send idempotency keys, unused invites, and uncommitted
    or orphaned attachment blobs now (the server also does all but invites periodically)."""
    from parley_server.service.context import now_ms
    from parley_server.store.admin import admin_store_of

    settings = _settings(ctx)

    async def job(app: Any) -> dict[str, int]:
        now = now_ms()
        store = app.services.store
        blobs = app.attachments.blobs
        await blobs.open()
        try:
            collected: int = await app.attachments.gc(now)
        finally:
            await blobs.close()
        return {
            "blobs_collected": collected,
            "to_device_expired": await store.expire_to_device(
                now - int(settings.to_device_ttl_s * 1000)
            ),
            "idempotency_keys_expired": await store.expire_idempotency(now - 7 * 24 * 3600 * 1000),
            "invites_expired": await admin_store_of(app.services.stores).expire_invites(now),
        }

    click.echo(json.dumps(_run(settings, job), indent=2))


# --- backup and restore -----------------------------------------------------------------------
def backup_sqlite(src: Path, dest: Path) -> None:
    """A consistent online copy with SQLite's backup API (readers and the writer go on)."""
    source = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(dest)
    try:
        source.execute("PRAGMA busy_timeout=5000")
        source.backup(target, pages=4096, sleep=0.005)
    finally:
        target.close()
        source.close()


@admin.command("backup")
@click.argument("dest", type=click.Path(file_okay=False))
@click.pass_context
def backup(ctx: click.Context, dest: str) -> None:
    """Copy the database (online, consistent) and the blobs directory into DEST (a new dir)."""
    settings = _settings(ctx)
    src = settings.data_path / DB_NAME
    if not src.exists():
        raise click.ClickException(f"no database at {src}")
    out = Path(dest)
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    backup_sqlite(src, out / DB_NAME)
    with sqlite3.connect(out / DB_NAME) as check:
        (ok,) = check.execute("PRAGMA integrity_check").fetchone()
        (version,) = check.execute("PRAGMA user_version").fetchone()
    if ok != "ok":
        raise click.ClickException(f"the copy failed its integrity check: {ok}")
    blobs = settings.data_path / BLOBS_DIR
    if blobs.is_dir():
        shutil.copytree(blobs, out / BLOBS_DIR)
    manifest = {
        "format": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "schema_version": version,
        "database": DB_NAME,
        "blobs": blobs.is_dir(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    click.echo(f"backup of {src} in {out} ({time.monotonic() - t0:.1f} s, schema {version})")


@admin.command("restore")
@click.argument("src", type=click.Path(file_okay=False, exists=True))
@click.option("--force", is_flag=True, help="Replace an existing database in the data dir.")
@click.pass_context
def restore(ctx: click.Context, src: str, force: bool) -> None:
    """Put a backup made by ``parley admin backup`` into the data dir (server stopped)."""
    settings = _settings(ctx)
    backup_dir = Path(src)
    db = backup_dir / DB_NAME
    if not (backup_dir / MANIFEST).exists() or not db.exists():
        raise click.ClickException(f"{backup_dir} is not a Parley backup (no {MANIFEST})")
    target = settings.data_path
    target.mkdir(parents=True, exist_ok=True)
    if (target / DB_NAME).exists() and not force:
        raise click.ClickException(f"{target / DB_NAME} exists (stop the server; use --force)")
    for suffix in ("", "-wal", "-shm"):
        (target / (DB_NAME + suffix)).unlink(missing_ok=True)
    backup_sqlite(db, target / DB_NAME)
    if (backup_dir / BLOBS_DIR).is_dir():
        shutil.rmtree(target / BLOBS_DIR, ignore_errors=True)
        shutil.copytree(backup_dir / BLOBS_DIR, target / BLOBS_DIR)
    click.echo(f"restored {backup_dir} into {target}; start the server (it migrates if needed)")


admin.add_command(migrate_command)  # parley admin migrate (redis_migration.py, issue 10)

__all__ = ["admin", "backup_sqlite"]
