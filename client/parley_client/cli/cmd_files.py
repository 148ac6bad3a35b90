"""Files: ``parley send USER --file PATH`` (via ``send_file``) and ``parley download MSG``.

A file is encrypted on this device (a fresh key per file), uploaded straight to the blob store
and sent as an attachment message; the server sees only the ciphertext's size and digest.
"""

from __future__ import annotations

from pathlib import Path

import click

from parley.client.message_state import MessageState
from parley.client.session import RequestError
from parley.crypto import content as content_mod
from parley.crypto.errors import CryptoError
from parley_client import attachments
from parley_client.cli import render
from parley_client.cli.command import ParleyCommand
from parley_client.cli.conversations import chat_id, info, resolve
from parley_client.cli.errors import CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.runtime import Ctx, connected, guard, run

SEND_TIMEOUT_S = 20.0

_ERRORS = {
    "too_large": "the file is larger than this server accepts",
    "quota_exceeded": "your storage quota on this server is used up",
    "blob_mismatch": "the uploaded file was damaged on the way; try again",
    "blob_missing": "the upload did not arrive; try again",
    "not_found": "no such attachment, or you may not fetch it",
}


def _api(ctx: Ctx) -> AccountApi:
    _, meta, secrets = ctx.logged_in()
    return AccountApi(meta.server, secrets.token)


def _request_error(exc: RequestError) -> CliError:
    return CliError(_ERRORS.get(exc.code, f"{exc.code}: {exc}"))


def send_file(ctx: Ctx, target: str, path: Path, caption: str) -> tuple[bytes, int]:
    """Upload ``path`` and send it to ``target`` with an optional caption; (chat, seq)."""
    if not path.is_file():
        raise CliError(f"no such file: {path}")

    async def go() -> tuple[bytes, int]:
        names = ctx.names()
        async with connected(ctx) as (client, _, meta):
            cid = await resolve(client, _api(ctx), names, target)
            names.save()
            try:
                pointer = await attachments.upload_file(client.client.session, meta.server, path)
            except RequestError as exc:
                raise _request_error(exc) from None
            except attachments.TransferError as exc:
                raise CliError(str(exc)) from None
            local_id = await client.send_attachment(cid, pointer, caption)
            if client.pending_state(local_id) is MessageState.WAITING_FOR_KEYS:
                raise CliError(
                    "queued but not sent: a recipient has no encryption keys yet (they must "
                    "log in once); it is encrypted and sent by your next parley command"
                )
            seq = await client.wait_sent(local_id, SEND_TIMEOUT_S)
            return cid, seq

    return run(go)


def _parse_msg(msg: str) -> tuple[str, int]:
    target, sep, seq = msg.rpartition(":")
    if not sep or not target or not seq.isdigit():
        raise CliError("MSG is CHAT-ID:SEQ or USER:SEQ (as printed by history/watch --json)")
    return target, int(seq)


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley download bob:42
  parley download 3f2a...c9:7 -o photo.jpg""",
)
@click.argument("msg", metavar="MSG")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the file [its name, in the current directory].")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_obj
@guard
def download(ctx: Ctx, msg: str, output: Path | None, force: bool) -> None:
    """Download, check and decrypt the file of an attachment message (MSG = CHAT:SEQ)."""
    target, seq = _parse_msg(msg)

    async def go() -> tuple[Path, int]:
        names = ctx.names()
        async with connected(ctx) as (client, _, meta):
            cid = await resolve(client, _api(ctx), names, target)
            names.save()
            from parley_client.cli.cmd_chat import _catch_up  # (cmd_chat imports this module)

            await _catch_up(client, cid, min(seq, (await info(client, cid)).last_seq))
            found = [m for m in await client.messages(cid) if m.seq == seq]
            if not found or found[0].state is not MessageState.DECRYPTED:
                raise CliError(f"no readable message {seq} in chat {chat_id(cid)}")
            c = found[0].content
            if isinstance(c, content_mod.Sync):
                c = c.content
            if not isinstance(c, content_mod.Att):
                raise CliError(f"message {seq} is not an attachment")
            dest = output or Path(Path(c.att.name or c.att.id).name or c.att.id)
            if dest.exists() and not force:
                raise CliError(f"{dest} exists (use --force or -o)")
            try:
                data = await attachments.fetch_blob(client.client.session, meta.server, cid, c.att)
            except RequestError as exc:
                raise _request_error(exc) from None
            except attachments.TransferError as exc:
                raise CliError(str(exc)) from None
            except CryptoError:
                raise CliError("the file failed its integrity check; not saved") from None
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(dest)
            return dest, len(data)

    dest, size = run(go)
    render.ok(f"Saved {dest} ({size} bytes).")


COMMANDS = [download]
