"""``parley`` client commands (register, login, chats, send, watch...) for people, bots and
scripts, on the CPython client and its E2E layer. See docs/cli.md.

``register_commands(main)`` attaches them to the ``parley`` click group of ``cli.py``.
"""

from __future__ import annotations

from parley_client.cli.client_group import register_commands

__all__ = ["register_commands"]
