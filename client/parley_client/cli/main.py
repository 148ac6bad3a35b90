"""The one ``parley`` console script.

The client commands (register, send, watch...) always exist. The server commands (``serve``,
and ``admin`` when present) are mounted only when the server package is installed
(``pip install 'parley[server]'``), so a bot author's install carries no Litestar or uvicorn.
"""

from __future__ import annotations

import importlib.util

import click

from parley_client.cli.client_group import register_commands


@click.group()
def main() -> None:
    """Parley: self-hosted, end-to-end encrypted instant messenger."""


register_commands(main)

if importlib.util.find_spec("parley_server") is not None and (
    importlib.util.find_spec("litestar") is not None
):
    from parley_server.cli import register_server_commands

    register_server_commands(main)

if __name__ == "__main__":
    main()
