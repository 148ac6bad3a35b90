"""Hidden prompts for secrets. On a terminal: click's hidden prompt (twice to confirm). Not on a
terminal (scripts, pipes): one line from stdin, no prompt text and no echo warning, so nothing
but the error line ever lands on stderr."""

from __future__ import annotations

import sys

import click

from parley_client.cli.errors import CliError


def secret(label: str, *, confirm: bool = False, hint: str = "") -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            extra = f" (or set {hint})" if hint else ""
            raise CliError(f"no {label.lower()} given: stdin is not a terminal{extra}")
        return line
    try:
        value: str = click.prompt(label, hide_input=True, confirmation_prompt=confirm, err=True)
    except click.Abort:
        raise CliError(f"no {label.lower()} given") from None
    if not value:
        raise CliError(f"the {label.lower()} cannot be empty")
    return value
