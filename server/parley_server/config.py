"""Server settings: one msgspec Struct, defaults from the protocol limits, ``PARLEY_*`` overrides.

Precedence: explicit CLI options > ``PARLEY_<FIELD>`` environment variables > defaults. The
limits a client must know are announced in ``Welcome.limits``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from parley.protocol import limits


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "./parley-data"
    log_level: str = "info"
    log_json: bool = False
    """One JSON object per log line (for log shippers) instead of key=value text."""

    # --- WebSocket session -----------------------------------------------------------------
    hello_timeout_s: float = limits.HELLO_TIMEOUT_S
    heartbeat_s: float = limits.HEARTBEAT_S
    send_queue_max: int = limits.SEND_QUEUE_MAX
    shutdown_grace_s: float = 2.0
    """How long a clean shutdown waits for sockets to take their Bye before closing the store."""

    # --- limits ----------------------------------------------------------------------------
    max_frame_bytes: int = limits.MAX_FRAME_BYTES
    max_envelope_bytes: int = limits.MAX_ENVELOPE_BYTES
    max_to_device_bytes: int = limits.MAX_TO_DEVICE_BYTES
    max_to_device_batch: int = limits.MAX_TO_DEVICE_BATCH
    max_meta_bytes: int = limits.MAX_META_BYTES
    max_group_members: int = limits.MAX_GROUP_MEMBERS
    history_page_max: int = limits.HISTORY_PAGE_MAX
    sync_events_max: int = limits.SYNC_EVENTS_MAX
    sync_to_device_max: int = limits.SYNC_TO_DEVICE_MAX
    sync_conversations_max: int = limits.SYNC_CONVERSATIONS_MAX
    to_device_ttl_s: float = limits.TO_DEVICE_TTL_S
    to_device_expire_every_s: float = 3600.0

    # --- accounts --------------------------------------------------------------------------
    login_account_limit: int = 10
    """Failed logins per account per window before 429."""
    login_ip_limit: int = 100
    """Failed logins per client IP per window before 429."""
    login_window_s: float = 300.0
    password_min_len: int = 10
    provisioning_ttl_s: float = 600.0
    """Device-linking window (docs/imv1.md §2 ``PROV_TTL``): a prov_id and its link token expire."""
    provisioning_ip_limit: int = 60
    """prov_id registrations plus unknown link tokens per client IP per ``login_window_s``."""
    argon2_opslimit: int = 2  # nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    argon2_memlimit: int = 64 * 1024 * 1024  # nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE

    # --- abuse controls (issue 11) -----------------------------------------------------------
    login_account_global_limit: int = 50
    """Failed logins per account from all IPs per window before the account's slow back-off:
    then at most one attempt per ``login_backoff_s`` for it, except from an IP that logged in
    to it recently. A back-off, never a lock."""
    login_backoff_s: float = 5.0
    register_ip_limit: int = 10
    """Registration attempts (successful or not) per client IP per ``register_window_s``."""
    register_window_s: float = 3600.0
    lookup_limit: int = 120
    """User lookups (HTTP by username, ``user_lookup``) per user per ``lookup_window_s``."""
    lookup_window_s: float = 300.0
    forwarded_allow_ips: str = ""
    """Comma-separated proxy IPs/networks whose X-Forwarded-For / X-Forwarded-Proto are
    trusted for the client address (uvicorn's ``forwarded_allow_ips``). Empty: trust none,
    the peer address is the client address."""
    http_header_timeout_s: float = 10.0
    """An HTTP request head and body must arrive within this many seconds, else the
    connection is closed (slow-loris)."""
    unauth_conns_per_ip: int = 256
    """Concurrent connections per client IP that are not (yet) an authenticated WebSocket:
    plain HTTP connections and sockets waiting for their ``hello``. Beyond it, refused."""
    send_queue_max_bytes: int = limits.SEND_QUEUE_MAX_BYTES
    """Bytes queued to one WebSocket before it is closed 4009 (a client that does not read)."""
    to_device_queue_max: int = 1000
    """Undelivered to-device items one sender may have queued for one recipient user."""
    group_direct_add: str = "contacts"
    """Who ``group_create``/``group_invite`` add at once: ``contacts`` (anyone else gets an
    invitation to accept), ``none`` (always an invitation) or ``anyone``."""

    # --- policy ----------------------------------------------------------------------------
    direct_open_to_all: bool = False
    """When True anyone may open (and write in) a direct conversation with any user who has
    not blocked them; by default a direct conversation needs mutual contacts (``not_contact``)."""
    recall_window_s: float = limits.RECALL_WINDOW_S
    """How long after sending a message may be recalled (by its sender or a group admin)."""
    presence_coalesce_s: float = limits.PRESENCE_COALESCE_S
    """At most one presence update per watched user per watcher in this many seconds."""
    presence_tick_s: float = 1.0
    """How often the presence flusher sends what is due (batched per watcher)."""

    # --- attachments -----------------------------------------------------------------------
    blobs: str = ""
    """Where encrypted attachment blobs are kept: empty or ``local`` = files under
    ``<data_dir>/blobs`` served by this server; ``file:///DIR``; or an S3-compatible bucket,
    ``s3://BUCKET?endpoint=https://host:9000&region=us-east-1`` (keys from
    ``PARLEY_S3_ACCESS_KEY`` / ``PARLEY_S3_SECRET_KEY``; see docs/attachments.md)."""
    max_blob_bytes: int = 100 * 1024 * 1024
    """Largest encrypted blob one upload may announce (``too_large`` beyond)."""
    blob_quota_bytes: int = 2 * 1024 * 1024 * 1024
    """Bytes of blobs one user may keep stored, pending and committed (``quota_exceeded``)."""
    blob_put_ttl_s: int = 3600
    """How long a presigned upload stays valid (must stay below ``blob_pending_ttl_s``)."""
    blob_get_ttl_s: int = 300
    """How long a presigned download stays valid."""
    blob_pending_ttl_s: float = 24 * 3600.0
    """Uncommitted uploads are deleted this long after ``upload_begin``."""
    blob_unsent_ttl_s: float = 24 * 3600.0
    """Committed blobs no message ever listed are deleted this long after their commit. (A blob
    whose every message was recalled, or whose conversations were disbanded, goes at the next
    GC pass.)"""
    blob_gc_every_s: float = 600.0

    # --- operations ------------------------------------------------------------------------
    metrics_port: int = 0
    """Serve Prometheus ``/metrics`` on this port (0: off). Never on the public listener."""
    metrics_host: str = "127.0.0.1"
    """Interface of the metrics listener (``0.0.0.0`` in a container scraped from outside)."""
    registration: str = "open"
    """Default registration mode, ``open`` | ``invite`` | ``closed``, until an operator sets one
    with ``parley admin registration`` (stored; the stored mode wins)."""
    invite_ttl_s: float = 7 * 24 * 3600.0
    """How long an invite made by ``parley admin invite create`` stays usable."""
    admin_poll_s: float = 2.0
    """How often the server reads the accounts an operator disabled or deleted (and closes
    their sockets, close code 4004)."""
    public_url: str = ""
    """The URL users reach (``https://chat.example.org``): used in invite links."""
    drain_delay_s: float = 0.0
    """On SIGTERM, how long /readyz fails while sockets stay open, before they are told to
    reconnect elsewhere (give the load balancer's readiness probe time to notice)."""

    # --- calls ---------------------------------------------------------------------------------
    turn_uri: str = ""
    """TURN URIs handed to clients (``turn:host:3478?transport=udp``), separated by commas or
    spaces (``--turn-uri`` repeatable). Empty: no TURN, calls use host candidates (one LAN)."""
    turn_secret: str = ""
    """coturn's ``static-auth-secret`` (``use-auth-secret``): signs short-lived credentials."""
    turn_ttl_s: float = 3600.0
    """Lifetime of TURN credentials."""
    turn_limit: int = 30
    """TURN credential requests allowed per account per ``turn_window_s``."""
    turn_window_s: float = 300.0

    # --- scale-out (docs/scale-out.md) ----------------------------------------------------
    store: str = ""
    """Where the server keeps its state: empty = the SQLite file in the data dir;
    ``redis://HOST:PORT/DB`` (one Redis) or ``redis+cluster://HOST:PORT,HOST:PORT`` (a cluster)
    for several nodes sharing one state."""
    broker: str = ""
    """How nodes hand each other pushes: empty = in-process (one node; with a Redis store the
    store's Redis is used); ``redis://...`` or ``redis+cluster://...``."""
    redis_prefix: str = "parley:"
    """Prefix of every Redis key and channel (several installations may share one Redis)."""
    redis_wait_replicas: int = 0
    """Acknowledge a write only once ``WAIT`` confirmed it reached this many replicas."""
    redis_wait_timeout_ms: int = 1000
    """How long ``WAIT`` may take before the write is refused as ``unavailable``."""
    node_id: str = ""
    """This node's name in /healthz, logs and the connection registry (default: host:port)."""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


ENV_PREFIX = "PARLEY_"


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then ``PARLEY_*`` environment variables, then non-None ``overrides``."""
    env = os.environ if environ is None else environ
    fields = set(Settings.__struct_fields__)
    raw: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in fields:
                raw[name] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            if key not in fields:
                raise ValueError(f"unknown setting {key!r}")
            raw[key] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid setting: {exc}") from None
