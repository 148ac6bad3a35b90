"""The server's commands of the ``parley`` console script (``parley_client.cli.main``).

The server stack (uvicorn, Litestar) is imported only inside ``serve`` (see runner.py), so the
client commands start fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from parley_server.config import load_settings


@click.command()
@click.option("--host", default=None, help="Interface to listen on [127.0.0.1].")
@click.option("--port", type=int, default=None, help="TCP port [8080].")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data directory [./parley-data].",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Log level [info].",
)
@click.option("--hello-timeout", type=float, default=None, help="Seconds to wait for Hello [10].")
@click.option(
    "--heartbeat", type=float, default=None, help="Heartbeat seconds (idle close 3x) [25]."
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Comma-separated proxy IPs/networks trusted for X-Forwarded-For [none].",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus /metrics on this port (PARLEY_METRICS_HOST, 127.0.0.1) [off].",
)
@click.option(
    "--turn-uri",
    multiple=True,
    help="TURN URI handed to clients for calls (repeatable), e.g. turn:turn.example.org:3478.",
)
@click.option(
    "--turn-secret",
    default=None,
    help="coturn static-auth-secret (use-auth-secret) that signs TURN credentials.",
)
@click.option(
    "--blobs",
    default=None,
    help="Attachment store: local (files in the data dir) or s3://BUCKET?endpoint=URL&region=R"
    " (keys from PARLEY_S3_ACCESS_KEY / PARLEY_S3_SECRET_KEY) [local].",
)
@click.option(
    "--store",
    default=None,
    help="State store: redis://HOST:PORT/DB or redis+cluster://HOST:PORT,... [SQLite in the"
    " data dir].",
)
@click.option(
    "--broker",
    default=None,
    help="Cross-node pushes: redis://... or redis+cluster://... [in-process; with a Redis"
    " store, that Redis].",
)
@click.option(
    "--redis-wait-replicas",
    type=int,
    default=None,
    help="Acknowledge writes only after WAIT confirmed N replicas [0].",
)
@click.option("--node-id", default=None, help="This node's name (/healthz, logs) [host:port].")
def serve(**options: Any) -> None:
    """Run the server (settings also come from PARLEY_* environment variables)."""
    overrides = {
        "host": options["host"],
        "port": options["port"],
        "data_dir": options["data_dir"],
        "log_level": options["log_level"],
        "hello_timeout_s": options["hello_timeout"],
        "heartbeat_s": options["heartbeat"],
        "turn_uri": ",".join(options["turn_uri"]) or None,
        "turn_secret": options["turn_secret"],
        "metrics_port": options["metrics_port"],
        "forwarded_allow_ips": options["forwarded_allow_ips"],
        "blobs": options["blobs"],
        "store": options["store"],
        "broker": options["broker"],
        "redis_wait_replicas": options["redis_wait_replicas"],
        "node_id": options["node_id"],
    }
    try:
        settings = load_settings(overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from parley_server.logging import configure_logging
    from parley_server.runner import build_server

    configure_logging(settings.log_level, settings.log_json)
    server = build_server(settings)
    server.run()
    if not server.started:
        sys.exit(3)


def register_server_commands(group: click.Group) -> None:
    """Mount the server commands on the ``parley`` group."""
    from parley_server.admin_cli import admin

    group.add_command(serve)
    group.add_command(admin)
