"""The ``parley`` client commands end to end against the real server, real E2E crypto on both
sides, real sockets: in-process through click's CliRunner (``cli``) where speed matters, and the
real console entry in subprocesses (``parley``: ``python -m parley_client.cli.main``) for exit codes,
stderr lines and ``watch``.

Every subprocess has a timeout; ``watch`` is stopped by its own PID (SIGTERM).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from parley_client.cli.main import main
from parley_client.cli.profile import Profile
from tests.support.accounts import PASSWORD, unique_name
from tests.support.server import ServerProcess, free_port

RUN_TIMEOUT_S = 60.0
PASSPHRASE = "profile passphrase for tests"


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli_env(server: str, profile: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PARLEY_SERVER": server,
        "PARLEY_PROFILE_KDF": "min",  # Argon2id MIN limits: fast tests
        "PARLEY_PROFILE_PASSPHRASE": PASSPHRASE,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    if profile is not None:
        env["PARLEY_PROFILE"] = str(profile)
    return env


def parley(env: dict[str, str], *args: str, stdin: str = "") -> Result:
    p = subprocess.run(
        [sys.executable, "-m", "parley_client.cli.main", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    return Result(p.returncode, p.stdout, p.stderr)


def cli(env: dict[str, str], *args: str, stdin: str = "") -> Result:
    """In-process run of the same click group (the commands still use real sockets)."""
    r = CliRunner().invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)
    return Result(r.exit_code, r.stdout, r.stderr)


def one_error_line(r: Result) -> str:
    """The error contract: exactly one line on stderr, no traceback."""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err
    return lines[0]


@dataclass
class User:
    name: str
    env: dict[str, str]
    profile: Path


def new_user(server: ServerProcess, tmp: Path, prefix: str, *login_args: str) -> User:
    name = unique_name(prefix)
    profile = tmp / f"profile-{name}"
    env = cli_env(server.http_url, profile)
    r = cli(env, "register", name, "--password-stdin", stdin=PASSWORD + "\n")
    assert r.code == 0, r.err
    assert f"Registered {name}" in r.out
    r = cli(env, "login", name, "--password-stdin", "--device-name", "cli-test",
               *login_args, stdin=PASSWORD + "\n")  # fmt: skip
    assert r.code == 0, r.err
    assert f"Logged in as {name}" in r.out
    assert "Encryption keys created and published" in r.err, r.err
    return User(name, env, profile)


# --- help ------------------------------------------------------------------------------------

HELP = {
    ("register",): ["USERNAME", "--password-stdin"],
    ("login",): ["USERNAME", "--device-name", "--no-profile-passphrase"],
    ("logout",): [],
    ("devices",): ["--revoke"],
    ("link",): ["--device-name", "--timeout", "--no-profile-passphrase"],
    ("link-accept",): ["CODE", "--yes"],
    ("contacts",): [],
    ("request",): ["USER", "--note"],
    ("requests",): [],
    ("accept",): ["USER"],
    ("reject",): ["USER"],
    ("block",): ["USER"],
    ("unblock",): ["USER"],
    ("invites",): [],
    ("join",): ["GROUP"],
    ("decline",): ["GROUP"],
    ("chats",): [],
    ("send",): ["USER|CHAT-ID", "TEXT", "--file"],
    ("download",): ["MSG", "--output", "--force"],
    ("history",): ["USER|CHAT-ID", "--limit"],
    ("watch",): ["--json"],
    ("verify",): ["USER", "--mark"],
    ("call",): ["USER", "--play", "--video", "--answer", "--echo", "--relay"],
    ("backup", "create"): ["--passphrase"],
    ("backup", "restore"): ["--passphrase"],
}


@pytest.mark.parametrize("path", list(HELP), ids=" ".join)
def test_help_of_every_command(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output
    assert "--server" in r.output and "--profile" in r.output
    assert "Example" in r.output
    for word in HELP[path]:
        assert word in r.output, (path, word)


def test_every_client_command_is_covered_by_the_help_test() -> None:
    server_commands = {"serve", "admin"}  # mounted from the server package, tested with it
    top = {name for name in main.commands if name not in server_commands}
    assert top == {p[0] for p in HELP}


# --- accounts and profile ------------------------------------------------------------------------


def test_register_login_devices_revoke_logout(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_acc")
    r = cli(alice.env, "devices")
    assert r.code == 0, r.err
    assert "cli-test" in r.out and "this device" in r.out

    # A second device of the same account, in another profile.
    second = cli_env(server.http_url, tmp_path / "second")
    r = cli(second, "login", alice.name, "--password-stdin", "--device-name", "tablet",
               stdin=PASSWORD + "\n")  # fmt: skip
    assert r.code == 0, r.err
    r = cli(alice.env, "devices")
    assert "tablet" in r.out
    tablet_id = next(ln.split()[0] for ln in r.out.splitlines() if "tablet" in ln)

    r = cli(alice.env, "devices", "--revoke", tablet_id)
    assert r.code == 0, r.err
    assert f"Device {tablet_id} revoked" in r.out
    assert "tablet" not in cli(alice.env, "devices").out
    r = parley(second, "devices")  # the revoked device's profile no longer works
    assert r.code == 1
    assert "parley login" in one_error_line(r)

    r = cli(alice.env, "logout", "--forget")
    assert r.code == 0, r.err
    assert sorted(p.name for p in alice.profile.iterdir()) == ["lock"]  # nothing else
    r = parley(alice.env, "chats")
    assert r.code == 1
    assert "not logged in" in one_error_line(r)


def test_logout_then_login_keeps_the_identity(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_ra")
    bob = new_user(server, tmp_path, "cli_rb")
    assert cli(alice.env, "send", bob.name, "before logout").code == 0
    before = cli(bob.env, "verify", alice.name)
    assert before.code == 0, before.err

    r = cli(alice.env, "logout")
    assert r.code == 0, r.err
    left = {p.name for p in alice.profile.iterdir()}
    assert {"account.bin", "profile.json"} <= left  # the sealed identity stays...
    assert not left & {"secrets.bin", "store.bin", "e2e.bin"}  # ...session, store, device go
    r = cli(alice.env, "devices")
    assert r.code == 1 and "not logged in" in r.err

    r = cli(alice.env, "login", alice.name, "--password-stdin", stdin=PASSWORD + "\n")
    assert r.code == 0, r.err
    assert "Encryption keys created and published" in r.err, r.err
    assert "identity key kept" in r.err

    # bob still sees the same safety number, and his next message reaches the new device
    after = cli(bob.env, "verify", alice.name)
    assert after.code == 0, after.err
    assert after.out.splitlines()[1:3] == before.out.splitlines()[1:3]
    assert cli(bob.env, "send", alice.name, "after relogin").code == 0, "send failed"
    r = cli(alice.env, "history", bob.name, "--json")
    assert r.code == 0, r.err
    texts = [json.loads(ln).get("text") for ln in r.out.splitlines()]
    assert "after relogin" in texts


def test_profile_holds_no_plaintext(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_pa")
    bob = new_user(server, tmp_path, "cli_pb")
    marker = f"MARKER-{unique_name('m')}"
    r = parley(alice.env, "send", bob.name, marker)
    assert r.code == 0, r.err
    r = cli(bob.env, "history", alice.name)
    assert r.code == 0, r.err
    assert marker in r.out  # decrypted on bob's side...

    for u in (alice, bob):
        prof = Profile(u.profile)
        prof.unlock(PASSPHRASE)
        token = prof.secrets().token.encode()
        assert stat.S_IMODE(u.profile.stat().st_mode) == 0o700
        files = [p for p in u.profile.iterdir() if p.is_file()]
        assert {p.name for p in files} >= {"profile.json", "secrets.bin", "store.bin", "e2e.bin"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
            data = p.read_bytes()
            assert marker.encode() not in data, p  # ...but nowhere in the profile files
            assert token not in data, p
            assert b"sqlite" not in data.lower(), p  # no readable database image
        assert "protected only by file permissions" not in (u.profile / "profile.json").read_text()


def test_no_profile_passphrase_warns_and_uses_a_key_file(
    server: ServerProcess, tmp_path: Path
) -> None:
    name = unique_name("cli_np")
    env = cli_env(server.http_url, tmp_path / "np")
    del env["PARLEY_PROFILE_PASSPHRASE"]
    assert cli(env, "register", name, "--password-stdin", stdin=PASSWORD + "\n").code == 0
    r = cli(env, "login", name, "--password-stdin", "--no-profile-passphrase",
               stdin=PASSWORD + "\n")  # fmt: skip
    assert r.code == 0, r.err
    assert "protected only by file permissions" in r.err
    key = tmp_path / "np" / "profile.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    r = cli(env, "devices", stdin="")  # no passphrase needed, none prompted
    assert r.code == 0, r.err
    assert "this device" in r.out


# --- messaging ---------------------------------------------------------------------------------


def test_two_users_send_and_history_both_ways(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_ma")
    bob = new_user(server, tmp_path, "cli_mb")
    r = parley(alice.env, "send", bob.name, "hello bob, from alice")
    assert r.code == 0, r.err
    chat = r.out.split("chat ")[1].split(",")[0]
    r = cli(
        bob.env,
        "send",
        alice.name,
        "hi alice",
    )
    assert r.code == 0, r.err
    assert f"chat {chat}," in r.out  # the same direct chat from both sides

    r = cli(bob.env, "chats")  # stores (and must decrypt) alice's message before history
    assert r.code == 0, r.err
    assert next(ln for ln in r.out.splitlines() if chat in ln).split()[2] == "1"  # unread

    for u, other in ((alice, bob), (bob, alice)):
        r = parley(u.env, "history", other.name, "--json")
        assert r.code == 0, r.err
        rows = [json.loads(line) for line in r.out.splitlines()]
        assert [(x["type"], x["text"]) for x in rows] == [
            ("text", "hello bob, from alice"), ("text", "hi alice"),
        ]  # fmt: skip
        assert [x["conversation_id"] for x in rows] == [chat, chat]
        assert rows[0]["seq"] < rows[1]["seq"]

    # by chat id, human format, --limit
    r = cli(bob.env, "history", chat, "--limit", "1")
    assert r.code == 0, r.err
    assert "hi alice" in r.out and "hello bob" not in r.out

    r = cli(alice.env, "chats")
    assert r.code == 0, r.err
    line = next(ln for ln in r.out.splitlines() if chat in ln)
    assert line.split()[1] == bob.name
    assert len(line.split()) == 4  # chat, with, date, time: no unread count after history

    # TEXT "-" reads stdin (scripts): by chat id, to the other side
    assert cli(bob.env, "send", chat, "-", stdin="piped\ntext\n").code == 0
    r = cli(alice.env, "history", chat, "--limit", "1", "--json")
    assert json.loads(r.out)["text"] == "piped\ntext"


def test_send_to_someone_without_keys_waits_encrypted_then_goes_out(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = new_user(server, tmp_path, "cli_qa")
    carol = unique_name("cli_qc")
    carol_env = cli_env(server.http_url, tmp_path / "carol")
    assert cli(carol_env, "register", carol, "--password-stdin", stdin=PASSWORD + "\n").code == 0
    r = parley(alice.env, "send", carol, "for carol, later")  # carol has no keys yet
    assert r.code == 1
    assert "queued but not sent" in one_error_line(r)
    r = cli(carol_env, "login", carol, "--password-stdin", stdin=PASSWORD + "\n")
    assert r.code == 0, r.err
    assert cli(alice.env, "chats").code == 0  # any command connects and flushes the queue
    r = cli(carol_env, "history", alice.name, "--json")
    assert r.code == 0, r.err
    assert [json.loads(ln)["text"] for ln in r.out.splitlines()] == ["for carol, later"]


def test_watch_json_prints_a_message_from_the_other_user(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = new_user(server, tmp_path, "cli_wa")
    bob = new_user(server, tmp_path, "cli_wb")
    assert cli(alice.env, "request", bob.name).code == 0  # contacts: watch shows their names
    assert cli(bob.env, "accept", alice.name).code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley_client.cli.main", "watch", "--json", "--send-stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=bob.env,
        text=True,
    )  # fmt: skip
    try:
        r = cli(alice.env, "send", bob.name, "watch me, bob")
        assert r.code == 0, r.err
        line = _read_line(proc, timeout=30.0)
        msg = json.loads(line)
        assert msg["type"] == "text" and msg["text"] == "watch me, bob"
        assert msg["sender_device"] >= 1 and msg["seq"] >= 2 and msg["ts"] > 0
        assert len(msg["conversation_id"]) == 32
        assert isinstance(msg["sender"], str) and msg["sender"]
        assert msg["sender_name"] == alice.name
        # one process per profile: a second command on bob's profile is refused while watching
        r = parley({**bob.env, "PARLEY_PROFILE_LOCK_WAIT": "0.3"}, "history", alice.name)
        assert r.code == 1
        assert "in use by another parley command" in one_error_line(r)

        # the bot answers through the same process
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"to": alice.name, "text": "bot reply", "ref": 7}) + "\n")
        proc.stdin.flush()
        ack = json.loads(_read_line(proc, timeout=30.0))
        assert ack == {"type": "sent", "conversation_id": msg["conversation_id"],
                       "seq": ack["seq"], "ref": 7}  # fmt: skip
        assert ack["seq"] > msg["seq"]
        proc.stdin.write("not json\n")
        proc.stdin.flush()
        assert json.loads(_read_line(proc, timeout=30.0))["type"] == "error"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    r = cli(alice.env, "history", bob.name, "--json")
    assert [json.loads(ln)["text"] for ln in r.out.splitlines()][-1] == "bot reply"


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if line:
                return line
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"watch exited {proc.returncode}: {err}")
    raise AssertionError("watch printed nothing in time")


def test_link_a_second_profile_through_the_relay(server: ServerProcess, tmp_path: Path) -> None:
    """A second profile of the same account, without the password: 'parley link' there,
    'parley link-accept' on the logged-in one; the new device reads and sends."""
    alice = new_user(server, tmp_path, "cli_la")
    bob = new_user(server, tmp_path, "cli_lb")
    assert cli(bob.env, "send", alice.name, "before the link").code == 0
    second = cli_env(server.http_url, tmp_path / "profile-second")
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley_client.cli.main", "link", "--device-name", "second",
         "--timeout", str(RUN_TIMEOUT_S)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=second,
    )  # fmt: skip
    try:
        code = _read_line(proc, RUN_TIMEOUT_S).strip()
        assert code.startswith("imlink:1:")
        r = cli(alice.env, "link-accept", code, stdin="n\n")  # asks; "n" keeps it unlinked
        assert r.code == 1 and "parley: error: not linked" in r.err
        r = cli(alice.env, "link-accept", code, "--yes")
        assert r.code == 0, r.err
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert f"Linked as {alice.name}" in out
    r = cli(alice.env, "devices")
    assert "second" in r.out
    # a code used once is spent; a code that is not one is a usage error
    r = cli(alice.env, "link-accept", code, "--yes")
    assert r.code == 1 and "already used" in one_error_line(r)
    r = cli(alice.env, "link-accept", "nonsense", "--yes")
    assert r.code == 2 and "not a link code" in one_error_line(r)

    assert cli(bob.env, "send", alice.name, "after the link").code == 0
    r = parley(second, "history", bob.name, "--json")
    assert r.code == 0, r.err
    assert "after the link" in [json.loads(ln).get("text") for ln in r.out.splitlines()], r.out
    r = parley(second, "send", bob.name, "from alice's second device")
    assert r.code == 0, r.err
    r = cli(bob.env, "history", alice.name, "--json")
    assert "from alice's second device" in [json.loads(ln).get("text") for ln in r.out.splitlines()]
    # the same account key on both: the same safety number for bob
    r1, r2 = cli(alice.env, "verify", bob.name), cli(second, "verify", bob.name)
    assert r1.code == 0 and r2.code == 0
    assert [ln for ln in r1.out.splitlines() if ln[:1].isdigit()] == [
        ln for ln in r2.out.splitlines() if ln[:1].isdigit()
    ]


def test_verify_shows_the_same_safety_number_on_both_sides(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = new_user(server, tmp_path, "cli_va")
    bob = new_user(server, tmp_path, "cli_vb")
    a = cli(alice.env, "verify", bob.name)
    b = cli(bob.env, "verify", alice.name)
    assert a.code == 0 and b.code == 0, a.err + b.err

    def number(out: str) -> list[str]:
        groups = [g for ln in out.splitlines()[1:3] for g in ln.split()]
        assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups), out
        return groups

    assert number(a.out) == number(b.out)
    assert "not verified" in a.out
    r = cli(alice.env, "verify", bob.name, "--mark")
    assert r.code == 0, r.err
    assert "Status: verified" in r.out
    assert "Status: verified" in cli(alice.env, "verify", bob.name).out


def test_backup_create_prints_a_recovery_key_that_restores(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = new_user(server, tmp_path, "cli_ba")
    bob = new_user(server, tmp_path, "cli_bb")
    assert cli(bob.env, "send", alice.name, "keep this").code == 0
    assert cli(alice.env, "history", bob.name).code == 0
    r = cli(alice.env, "backup", "create")
    assert r.code == 0, r.err
    key = r.out.splitlines()[1].strip()
    assert len(key.replace(" ", "")) == 52  # 32 bytes in base32
    r = cli({**alice.env, "PARLEY_RECOVERY_KEY": key}, "backup", "restore")
    assert r.code == 0, r.err
    assert "Restored" in r.out
    r = parley({**alice.env, "PARLEY_RECOVERY_KEY": "AAAA " * 13}, "backup", "restore")
    assert r.code == 1
    one_error_line(r)


# --- errors ------------------------------------------------------------------------------------


def test_bad_credentials_one_line_exit_1(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_ea")
    env = cli_env(server.http_url, tmp_path / "other")
    r = parley(env, "login", alice.name, "--password-stdin", stdin="not the password\n")
    assert r.code == 1
    assert one_error_line(r) == "parley: error: wrong username or password"
    assert not (tmp_path / "other" / "profile.json").exists()


def test_unknown_user_one_line_exit_1(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_eu")
    r = parley(alice.env, "send", "nobody_here_x1", "hello?")
    assert r.code == 1
    assert "no such user 'nobody_here_x1'" in one_error_line(r)


def test_wrong_profile_passphrase_one_line_exit_1(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_ep")
    r = parley({**alice.env, "PARLEY_PROFILE_PASSPHRASE": "wrong"}, "chats")
    assert r.code == 1
    assert one_error_line(r) == "parley: error: wrong profile passphrase"


def test_no_server_reachable_exit_3(tmp_path: Path) -> None:
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path / "p")
    r = parley(env, "login", "someone", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.code == 3
    assert "cannot reach the server" in one_error_line(r)
    r = parley(env, "register", "someone", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.code == 3
    one_error_line(r)


def test_usage_error_one_line_exit_2(tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:9", tmp_path / "p")
    r = parley(env, "send", "bob")
    assert r.code == 2
    assert "Missing argument 'TEXT'" in one_error_line(r)


# --- contacts (social ops) --------------------------------------------------------------------


def test_friend_request_accept_contacts_block_unblock(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = new_user(server, tmp_path, "cli_sa")
    bob = new_user(server, tmp_path, "cli_sb")
    r = cli(alice.env, "request", bob.name, "--note", "hi, it's alice")
    assert r.code == 0, r.err
    assert f"Friend request sent to {bob.name}" in r.out
    r = cli(bob.env, "requests")
    assert r.code == 0, r.err
    line = next(ln for ln in r.out.splitlines() if alice.name in ln)
    assert line.split()[0] == "from" and "hi, it's alice" in line
    out = cli(alice.env, "requests").out
    assert next(ln for ln in out.splitlines() if bob.name in ln).split()[0] == "to"

    r = cli(bob.env, "accept", alice.name)
    assert r.code == 0, r.err
    assert bob.name in cli(alice.env, "contacts").out
    assert alice.name in cli(bob.env, "contacts").out
    r = parley(bob.env, "reject", alice.name)  # nothing pending any more
    assert r.code == 1
    assert "no pending request" in one_error_line(r)

    r = cli(bob.env, "block", alice.name)
    assert r.code == 0, r.err
    line = next(ln for ln in cli(bob.env, "contacts").out.splitlines() if "blocked" in ln)
    assert alice.name in line
    r = parley(alice.env, "send", bob.name, "are you there?")
    assert r.code == 1
    assert "blocked" in one_error_line(r)
    assert cli(bob.env, "unblock", alice.name).code == 0
    r = parley(bob.env, "unblock", alice.name)
    assert r.code == 1
    assert "not blocked" in one_error_line(r)


def test_group_invitation_listed_and_joined(social_server: ServerProcess, tmp_path: Path) -> None:
    """On the default policy a stranger is invited, not added: the CLI lists and joins."""
    import asyncio

    import httpx

    from parley.protocol.ops import Conversation, GroupCreate
    from tests.support.accounts import new_user as http_user
    from tests.support.rawclient import RawClient

    (alice,) = http_user(social_server.http_url, "cli_inv")
    bob = new_user(social_server, tmp_path, "cli_invb")
    r = httpx.get(
        f"{social_server.http_url}/api/v1/users/{bob.name}",
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    bob_id = r.json()["user_id"]

    async def create() -> bytes:
        a = await RawClient.login(social_server.ws_url, alice.token)
        conv: Conversation = await a.call(GroupCreate(members=[bob_id]))
        await a.close()
        assert conv.invited == [bob_id]
        return conv.info.conversation_id

    cid = asyncio.run(create())
    r = cli(bob.env, "invites")
    assert r.code == 0, r.err
    line = next(ln for ln in r.out.splitlines() if cid.hex() in ln)
    assert alice.username in line
    r = cli(bob.env, "join", cid.hex())
    assert r.code == 0, r.err
    assert "joined" in r.out
    assert cid.hex() not in cli(bob.env, "invites").out
    r = parley(bob.env, "decline", cid.hex())
    assert r.code == 1 and "no pending invitation" in one_error_line(r)
