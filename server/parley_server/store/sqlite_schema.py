"""The SQLite schema of the store, and its migrations.

``PRAGMA user_version`` holds the schema version. ``migrate`` brings a database of any older
version up to ``SCHEMA_VERSION`` one step at a time; a database newer than this code is refused
rather than guessed at. Every per-stream counter lives in a row of its owner (conversation
``last_seq``, user ``last_event_seq`` and ``last_device_id``, device ``td_last_seq``) so a seq is
assigned in the same transaction as the row it numbers and never goes backwards, even after the
numbered rows are deleted.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 5

_V1 = """
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  BLOB NOT NULL,
    created        INTEGER NOT NULL,
    last_device_id INTEGER NOT NULL DEFAULT 0,  -- device ids are never reused
    last_event_seq INTEGER NOT NULL DEFAULT 0   -- per-user event timeline counter
) WITHOUT ROWID;

CREATE TABLE devices (
    user_id     TEXT NOT NULL REFERENCES users(user_id),
    device_id   INTEGER NOT NULL,
    name        TEXT NOT NULL,
    created     INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0,
    td_last_seq INTEGER NOT NULL DEFAULT 0,  -- to-device counter: survives acks and expiry
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id)
) WITHOUT ROWID;
CREATE INDEX sessions_by_device ON sessions(user_id, device_id);

CREATE TABLE conversations (
    conversation_id BLOB PRIMARY KEY,
    kind            TEXT NOT NULL,
    created_ts      INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_ts         INTEGER NOT NULL,
    meta            BLOB NOT NULL DEFAULT x'',
    disbanded       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- the unordered pair {a, b} stored ordered (user_lo <= user_hi): one direct conversation each
CREATE TABLE direct_pairs (
    user_lo         TEXT NOT NULL,
    user_hi         TEXT NOT NULL,
    conversation_id BLOB NOT NULL UNIQUE REFERENCES conversations(conversation_id),
    PRIMARY KEY (user_lo, user_hi)
) WITHOUT ROWID;

CREATE TABLE members (
    conversation_id BLOB NOT NULL REFERENCES conversations(conversation_id),
    user_id         TEXT NOT NULL REFERENCES users(user_id),
    role            TEXT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
-- conversation_states / list_conversations: a user's conversations in id order
CREATE INDEX members_by_user ON members(user_id, conversation_id);

CREATE TABLE entries (
    conversation_id BLOB NOT NULL REFERENCES conversations(conversation_id),
    seq             INTEGER NOT NULL,
    ts              INTEGER NOT NULL,
    sender          TEXT NOT NULL,
    sender_device   INTEGER,            -- NULL for server-authored entries
    body            BLOB NOT NULL,      -- msgpack of the EntryBody union, opaque
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;

-- append idempotency: a retried (sender, device, client_msg_id) resolves to the original entry
CREATE TABLE idempotency (
    sender          TEXT NOT NULL,
    sender_device   INTEGER NOT NULL,
    client_msg_id   TEXT NOT NULL,
    conversation_id BLOB NOT NULL,
    seq             INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    PRIMARY KEY (sender, sender_device, client_msg_id)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency(created);

CREATE TABLE user_events (
    user_id TEXT NOT NULL REFERENCES users(user_id),
    seq     INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    body    BLOB NOT NULL,              -- msgpack of the EventBody union
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;

CREATE TABLE to_device (
    user_id       TEXT NOT NULL,
    device_id     INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    ts            INTEGER NOT NULL,
    sender        TEXT NOT NULL,
    sender_device INTEGER NOT NULL,
    body          BLOB NOT NULL,        -- pairwise-encrypted envelope, opaque
    PRIMARY KEY (user_id, device_id, seq),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id)
) WITHOUT ROWID;
CREATE INDEX to_device_by_age ON to_device(ts);
"""

_V2 = """
-- the social layer: message references, recall tombstones, profiles, contacts, read marks
ALTER TABLE entries ADD COLUMN ref_seq INTEGER;      -- edit / reaction / reply target
ALTER TABLE entries ADD COLUMN ref_kind TEXT;
ALTER TABLE entries ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;
CREATE INDEX entries_by_ref ON entries(conversation_id, ref_seq) WHERE ref_seq IS NOT NULL;

CREATE TABLE profiles (
    user_id           TEXT PRIMARY KEY REFERENCES users(user_id),
    email             TEXT,                 -- normalized, not unique (never verified)
    phone             TEXT,                 -- normalized E.164 "+digits"
    hidden            INTEGER NOT NULL DEFAULT 0,
    read_receipts     INTEGER NOT NULL DEFAULT 1,
    last_seen_visible INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX profiles_by_email ON profiles(email) WHERE email IS NOT NULL;
CREATE INDEX profiles_by_phone ON profiles(phone) WHERE phone IS NOT NULL;

-- stored both ways: (a, b) and (b, a)
CREATE TABLE contacts (
    user_id    TEXT NOT NULL REFERENCES users(user_id),
    contact_id TEXT NOT NULL REFERENCES users(user_id),
    since      INTEGER NOT NULL,
    PRIMARY KEY (user_id, contact_id)
) WITHOUT ROWID;

CREATE TABLE friend_requests (
    from_user TEXT NOT NULL REFERENCES users(user_id),
    to_user   TEXT NOT NULL REFERENCES users(user_id),
    note      TEXT NOT NULL,
    created   INTEGER NOT NULL,
    PRIMARY KEY (from_user, to_user)
) WITHOUT ROWID;
CREATE INDEX friend_requests_to ON friend_requests(to_user, from_user);

CREATE TABLE blocks (
    user_id    TEXT NOT NULL REFERENCES users(user_id),
    blocked_id TEXT NOT NULL REFERENCES users(user_id),
    created    INTEGER NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
) WITHOUT ROWID;

CREATE TABLE read_marks (
    conversation_id BLOB NOT NULL REFERENCES conversations(conversation_id),
    user_id         TEXT NOT NULL REFERENCES users(user_id),
    seq             INTEGER NOT NULL,
    ts              INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX read_marks_by_user ON read_marks(user_id, conversation_id);
"""

# Hardening: group invitations, to-device caps, throttles.
_V3 = """
-- to-device cap per (sender, recipient user): counted on this index
CREATE INDEX to_device_by_sender ON to_device(user_id, sender);
-- the user events that carry a friend request's note, rewritten without it once answered
ALTER TABLE friend_requests ADD COLUMN from_event_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE friend_requests ADD COLUMN to_event_seq INTEGER NOT NULL DEFAULT 0;
-- group invitations: a member invites, the invitee accepts (or declines) before joining
CREATE TABLE group_invites (
    conversation_id BLOB NOT NULL REFERENCES conversations(conversation_id),
    invitee         TEXT NOT NULL REFERENCES users(user_id),
    inviter         TEXT NOT NULL REFERENCES users(user_id),
    created         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, invitee)
) WITHOUT ROWID;
CREATE INDEX group_invites_by_invitee ON group_invites(invitee, created);
"""

# Attachments: blob records (owner, size, digest, state) and where each was sent.
_V4 = """
-- one encrypted attachment blob: the object store holds its bytes under blob_id
CREATE TABLE blobs (
    blob_id   TEXT PRIMARY KEY,
    owner     TEXT NOT NULL REFERENCES users(user_id),
    size      INTEGER NOT NULL,
    sha256    BLOB NOT NULL,
    md5       BLOB,                     -- optional, for stores whose ETag is the MD5
    kind      TEXT NOT NULL,
    state     TEXT NOT NULL,            -- 'pending' | 'committed' | 'deleting'
    created   INTEGER NOT NULL,
    committed INTEGER
) WITHOUT ROWID;
CREATE INDEX blobs_by_owner ON blobs(owner, state);
CREATE INDEX blobs_by_state ON blobs(state, created);

-- the messages that carry a blob (from Send.blobs): who may download it
CREATE TABLE blob_refs (
    blob_id         TEXT NOT NULL,
    conversation_id BLOB NOT NULL,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (blob_id, conversation_id, seq)
) WITHOUT ROWID;
CREATE INDEX blob_refs_by_entry ON blob_refs(conversation_id, seq);
"""

# Operations: disabled accounts, registration mode and invites.
_V5 = """
-- an operator's decision about an account: 'disabled' (reversible) or 'deleted' (final)
CREATE TABLE account_status (
    user_id TEXT PRIMARY KEY REFERENCES users(user_id),
    status  TEXT NOT NULL,
    since   INTEGER NOT NULL
) WITHOUT ROWID;

-- server-wide settings an operator changes at run time (registration mode)
CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- one-time registration invites, stored only as the SHA-256 of their code
CREATE TABLE invites (
    code_hash BLOB PRIMARY KEY,
    created   INTEGER NOT NULL,
    expires   INTEGER NOT NULL,
    used_at   INTEGER,
    used_by   TEXT
) WITHOUT ROWID;
"""

_MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5}
"""Script that takes the schema from version ``n - 1`` to ``n``."""


class SchemaTooNew(Exception):
    """The database was written by a newer Parley; refuse rather than corrupt it."""


def _statements(script: str) -> list[str]:
    """Split a script into statements by SQLite's own tokenizer, so a ';' inside a comment or a
    string literal does not cut a statement (``executescript`` would commit our transaction)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf)
            buf = ""
    if buf.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement in a migration: {buf[:80]!r}")
    return statements


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION`` in one transaction; returns the old version.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"database schema {version} > supported {SCHEMA_VERSION}")
    if version == SCHEMA_VERSION:
        return int(version)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _statements(_MIGRATIONS[step]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(version)
