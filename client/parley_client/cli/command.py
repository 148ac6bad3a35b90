"""Click classes for the client commands: usage errors print ONE line (plus exit 2) instead of
click's three-line usage block, so scripts get a single parseable error line everywhere."""

from __future__ import annotations

from typing import IO, Any

import click


class OneLineUsageError(click.UsageError):
    def show(self, file: IO[Any] | None = None) -> None:
        name = self.ctx.command_path if self.ctx is not None else "parley"
        click.echo(f"{name}: usage error: {self.format_message()} (see '{name} --help')", err=True)


def _one_line(ctx: click.Context, exc: click.UsageError) -> OneLineUsageError:
    err = OneLineUsageError(exc.format_message(), exc.ctx or ctx)
    return err


class ParleyCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line(ctx, exc) from None


class ParleyGroup(click.Group):
    command_class = ParleyCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line(ctx, exc) from None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line(ctx, exc) from None
