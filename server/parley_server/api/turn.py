"""``GET /api/v1/turn``: TURN credentials for an authenticated device (coturn REST scheme).

The TURN server and Parley share ``--turn-secret``; a username is ``<expiry>:<user_id>`` and
expires after ``turn_ttl_s``. Per-account rate limit: a device asks once per call, so a bound of
``turn_limit`` per ``turn_window_s`` never bothers a real user but stops a credential farm.
"""

from __future__ import annotations

import time

import structlog
from litestar import get
from litestar.datastructures import State
from litestar.di import Provide

from parley.protocol.errors import ErrorCode
from parley.protocol.turn import TurnReply, rest_password, rest_username
from parley_server.api.auth import provide_session
from parley_server.config import Settings
from parley_server.service.context import Session
from parley_server.service.errors import ServiceError
from parley_server.service.ratelimit import SlidingWindow

log = structlog.get_logger("parley.turn")


def turn_uris(settings: Settings) -> list[str]:
    """``turn_uri`` holds one or more URIs separated by commas or spaces."""
    return [u for u in settings.turn_uri.replace(",", " ").split() if u]


class TurnService:
    def __init__(self, settings: Settings) -> None:
        self.uris = turn_uris(settings)
        self.secret = settings.turn_secret
        self.ttl_s = int(settings.turn_ttl_s)
        self._limit = SlidingWindow(settings.turn_limit, settings.turn_window_s)

    def credentials(self, session: Session, now: float) -> TurnReply:
        wait = self._limit.retry_after(session.user_id)
        if wait is not None:
            log.warning("turn_rate_limited", user_id=session.user_id)
            raise ServiceError(ErrorCode.RATE_LIMITED, "too many TURN credential requests", wait)
        self._limit.hit(session.user_id)
        expires = int(now) + self.ttl_s
        if not self.uris or not self.secret:
            return TurnReply(uris=[], username="", credential="", ttl_s=0, expires_at=0)
        username = rest_username(expires, session.user_id)
        cred = rest_password(self.secret, username)
        return TurnReply(self.uris, username, cred, self.ttl_s, expires)


def provide_turn(state: State) -> TurnService:
    svc: TurnService = state.turn
    return svc


@get(
    "/api/v1/turn",
    dependencies={
        "session": Provide(provide_session),
        "turn": Provide(provide_turn, sync_to_thread=False),
    },
    tags=["calls"],
)
async def turn_credentials(session: Session, turn: TurnService) -> TurnReply:
    return turn.credentials(session, time.time())
