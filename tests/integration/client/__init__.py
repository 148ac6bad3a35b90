"""The CPython client, its local store and the CLI, against the real server."""
