"""Contacts, friend requests and blocking, on the social layer's ops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from parley.client.session import RequestError
from parley_client.cli import render
from parley_client.cli.command import ParleyCommand
from parley_client.cli.conversations import user_id_of
from parley_client.cli.errors import CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.runtime import Ctx, connected, guard, run

_MISSING = "contacts are not available in this build (no social ops in the protocol)"


def _social() -> Any:
    try:
        from parley.protocol import social
    except ImportError:
        raise CliError(_MISSING) from None
    return social


async def _request(ctx: Ctx, build: Callable[[Any, str], Any], user: str | None) -> Any:
    """Connect, resolve ``user`` (if any) to a user id, send the op built from it."""
    social = _social()
    names = ctx.names()
    async with connected(ctx) as (client, _, meta):
        uid = ""
        if user is not None:
            uid = await user_id_of(AccountApi(meta.server, ctx.logged_in()[2].token), names, user)
            if uid == meta.user_id:
                raise CliError("that is you")
        try:
            result = await client.client.request(build(social, uid), 15)
        except RequestError as exc:
            if exc.code in ("not_found", "conflict", "blocked") and user is not None:
                # the social ops' own sentences: "no pending request", "not blocked"...
                raise CliError(f"{user.lower()}: {exc.message}") from None
            raise
    names.save()
    return result


def _user_op(name: str, help_text: str, op: str, done: str, example: str) -> click.Command:
    @click.command(name, cls=ParleyCommand, help=help_text, epilog=f"Example:\n\n  {example}")
    @click.argument("user")
    @click.pass_obj
    @guard
    def cmd(ctx: Ctx, user: str) -> None:
        run(lambda: _request(ctx, lambda s, uid: getattr(s, op)(user_id=uid), user))
        render.ok(done.format(user=user.lower()))

    return cmd


@click.command(
    cls=ParleyCommand,
    epilog="""\b
Examples:
  parley request bob
  parley request bob --note "hi, it's Alice from work\"""",
)
@click.argument("user")
@click.option("--note", default="", help="A short note shown with the request.")
@click.pass_obj
@guard
def request(ctx: Ctx, user: str, note: str) -> None:
    """Send a friend request to USER."""
    result = run(
        lambda: _request(ctx, lambda s, uid: s.FriendRequest(user_id=uid, note=note), user)
    )
    if getattr(result, "contact", False):
        render.ok(f"{user.lower()} had already asked you: you are contacts now.")
    else:
        render.ok(f"Friend request sent to {user.lower()}.")


@click.command(cls=ParleyCommand, epilog="Example:\n\n  parley requests")
@click.pass_obj
@guard
def requests(ctx: Ctx) -> None:
    """List pending friend requests, to you and from you."""
    result = run(lambda: _request(ctx, lambda s, _uid: s.FriendRequests(), None))
    names = ctx.names()
    rows = []
    for direction, items in (("from", result.incoming), ("to", result.outgoing)):
        for r in items:
            names.learn(r.user_id, r.username)
            rows.append([direction, r.username, r.note, render.when(r.created)])
    names.save()
    render.table(["", "User", "Note", "Sent"], rows, "No pending friend requests.")


@click.command(cls=ParleyCommand, epilog="Example:\n\n  parley contacts")
@click.pass_obj
@guard
def contacts(ctx: Ctx) -> None:
    """List your contacts (and whom you blocked)."""
    result = run(lambda: _request(ctx, lambda s, _uid: s.ContactList(), None))
    names = ctx.names()
    rows = []
    for c in result.contacts:
        names.learn(c.user_id, c.username)
        rows.append([c.username, render.when(c.since), ""])
    rows += [[names.show(uid), "", "blocked"] for uid in result.blocked]
    names.save()
    render.table(["User", "Since", ""], rows, "No contacts yet. Add one with: parley request USER")


accept = _user_op("accept", "Accept USER's friend request.", "FriendAccept",
                  "You and {user} are contacts now.", "parley accept bob")  # fmt: skip
reject = _user_op("reject", "Reject USER's friend request.", "FriendReject",
                  "Request from {user} rejected.", "parley reject bob")  # fmt: skip
block = _user_op("block", "Block USER (drops the contact and pending requests).", "Block",
                 "{user} is blocked.", "parley block bob")  # fmt: skip
unblock = _user_op("unblock", "Unblock USER.", "Unblock", "{user} is unblocked.",
                   "parley unblock bob")  # fmt: skip


@click.command(cls=ParleyCommand, epilog="Example:\n\n  parley invites")
@click.pass_obj
@guard
def invites(ctx: Ctx) -> None:
    """List your pending group invitations (join one with: parley join GROUP)."""
    from parley.protocol.invites import GroupInvites

    result = run(lambda: _request(ctx, lambda _s, _uid: GroupInvites(), None))
    names = ctx.names()
    rows = []
    for inv in result.invites:
        names.learn(inv.inviter, inv.inviter_name)
        rows.append([inv.conversation_id.hex(), inv.inviter_name, render.when(inv.created)])
    names.save()
    render.table(["Group", "Invited by", "When"], rows, "No pending group invitations.")


def _answer_invite(ctx: Ctx, group: str, accept: bool) -> None:
    from parley.protocol.invites import GroupInviteAccept, GroupInviteDecline

    try:
        cid = bytes.fromhex(group)
    except ValueError:
        raise CliError("GROUP is the id that 'parley invites' shows") from None
    if len(cid) != 16:
        raise CliError("GROUP is the id that 'parley invites' shows")
    op = GroupInviteAccept(conversation_id=cid) if accept else GroupInviteDecline(cid)

    async def answer() -> Any:
        try:
            return await _request(ctx, lambda _s, _uid: op, None)
        except RequestError as exc:
            if exc.code == "not_found":
                raise CliError("no pending invitation to that group") from None
            raise

    run(answer)


@click.command(cls=ParleyCommand, epilog="Example:\n\n  parley join 3f2a...c9")
@click.argument("group")
@click.pass_obj
@guard
def join(ctx: Ctx, group: str) -> None:
    """Accept the invitation to GROUP (an id from 'parley invites')."""
    _answer_invite(ctx, group, True)
    render.ok("You joined the group.")


@click.command(cls=ParleyCommand, epilog="Example:\n\n  parley decline 3f2a...c9")
@click.argument("group")
@click.pass_obj
@guard
def decline(ctx: Ctx, group: str) -> None:
    """Decline the invitation to GROUP."""
    _answer_invite(ctx, group, False)
    render.ok("Invitation declined.")


COMMANDS: list[click.Command] = [
    contacts, request, requests, accept, reject, block, unblock, invites, join, decline,
]  # fmt: skip
