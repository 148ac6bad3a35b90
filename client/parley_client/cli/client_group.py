"""Attach the client commands to the ``parley`` group, each with ``--server`` and
``--profile`` (also from PARLEY_SERVER / PARLEY_PROFILE)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from parley_client.cli import (
    cmd_account,
    cmd_call,
    cmd_chat,
    cmd_files,
    cmd_keys,
    cmd_link,
    cmd_social,
)
from parley_client.cli.profile import default_dir
from parley_client.cli.runtime import DEFAULT_SERVER, Ctx


def _set(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        setattr(ctx.ensure_object(Ctx), attr, value)

    return callback


def with_common_options(cmd: click.Command) -> click.Command:
    """Prepend --server/--profile to a command (and, for a group, to each of its commands)."""
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            with_common_options(sub)
        return cmd
    cmd.params[:0] = [
        click.Option(
            ["--server"], metavar="URL", envvar="PARLEY_SERVER", default=DEFAULT_SERVER,
            show_default=True, expose_value=False, callback=_set("server"),
            help="Parley server (env PARLEY_SERVER).",
        ),
        click.Option(
            ["--profile", "profile_dir"], metavar="DIR", envvar="PARLEY_PROFILE",
            default=default_dir(), show_default=True, expose_value=False,
            callback=_set("profile_dir"), help="Profile directory (env PARLEY_PROFILE).",
        ),
    ]  # fmt: skip
    return cmd


def register_commands(group: click.Group) -> None:
    for module in (cmd_account, cmd_link, cmd_chat, cmd_files, cmd_social, cmd_keys, cmd_call):
        for cmd in module.COMMANDS:
            group.add_command(with_common_options(cmd))
