"""The composition root of storage: ``build_stores(settings)`` builds every store domain of one
engine, ``Stores`` holds them, opens them in order and closes them in reverse.

Like Synapse's ``Databases``: the rest of the server never names an engine; it asks ``Stores``
for a domain's interface (``stores.social``, or ``stores.get(SomeDomainStore)`` for a domain
added later). The engine is chosen by ``Settings.store``: empty (the default) is the embedded
SQLite file in the data directory.

Adding a domain: an interface ``store/<domain>.py``, one engine module per engine
(``store/sqlite_<domain>.py``, ...), and one ``stores.add(Interface, Engine(...))`` line in each
``_build_<engine>`` below. Its engine may define ``async open()`` / ``close()``; they are called.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from parley_server.config import Settings
from parley_server.store.base import Store
from parley_server.store.keydir import KeyDirectory
from parley_server.store.provisioning import ProvisioningStore
from parley_server.store.social import SocialStore

T = TypeVar("T")


class Stores:
    """Every store domain of one server process, on one engine."""

    def __init__(
        self,
        engine: str,
        main: Store,
        social: SocialStore,
        keys: KeyDirectory,
        provisioning: ProvisioningStore,
    ) -> None:
        self.engine = engine
        self.main = main
        self.social = social
        self.keys = keys
        self.provisioning = provisioning
        self._domains: dict[type, object] = {
            Store: main,
            SocialStore: social,
            KeyDirectory: keys,
            ProvisioningStore: provisioning,
        }
        self._opened: list[object] = []

    def add(self, interface: type[T], engine: T) -> None:
        """Register the engine of a further domain (before ``open``)."""
        if interface in self._domains:
            raise ValueError(f"{interface.__name__} is already registered")
        self._domains[interface] = engine

    def get(self, interface: type[T]) -> T:
        try:
            return cast(T, self._domains[interface])
        except KeyError:
            raise LookupError(f"no {self.engine} engine for {interface.__name__}") from None

    async def open(self) -> None:
        """Open the main store first (it owns the connection), then every other domain."""
        await self.main.open()
        self._opened = [self.main]
        for engine in dict.fromkeys(self._domains.values()):
            if engine is self.main:
                continue
            opener = getattr(engine, "open", None)
            if opener is not None:
                await opener()
            self._opened.append(engine)

    async def close(self) -> None:
        """Close in reverse order; the main store (and its connection) last."""
        for engine in reversed(self._opened):
            closer: Any = getattr(engine, "close", None)
            if closer is not None:
                await closer()
        self._opened = []


def _build_sqlite(settings: Settings) -> Stores:
    from parley_server.store.admin import AdminStore
    from parley_server.store.blob_records import BlobRecords
    from parley_server.store.invites import InviteStore
    from parley_server.store.reach import ReachStore
    from parley_server.store.sqlite import SqliteStore
    from parley_server.store.sqlite_admin import SqliteAdminStore
    from parley_server.store.sqlite_blob_records import SqliteBlobRecords
    from parley_server.store.sqlite_invites import SqliteInviteStore
    from parley_server.store.sqlite_keydir import SqliteKeyDirectory
    from parley_server.store.sqlite_provisioning import SqliteProvisioning
    from parley_server.store.sqlite_reach import SqliteReachStore
    from parley_server.store.sqlite_social import SqliteSocialStore

    main = SqliteStore(settings.data_path / "parley.db")
    stores = Stores(
        "sqlite",
        main=main,
        social=SqliteSocialStore(main),
        keys=SqliteKeyDirectory(main),
        provisioning=SqliteProvisioning(main),
    )
    stores.add(AdminStore, SqliteAdminStore(main))  # type: ignore[type-abstract]
    stores.add(BlobRecords, SqliteBlobRecords(main))  # type: ignore[type-abstract]
    stores.add(ReachStore, SqliteReachStore(main))  # type: ignore[type-abstract]
    stores.add(InviteStore, SqliteInviteStore(main))  # type: ignore[type-abstract]
    # further domains: stores.add(SomeDomainStore, SqliteSomeDomainStore(main))
    return stores


def _build_redis(settings: Settings) -> Stores:
    from parley_server.store.admin import AdminStore
    from parley_server.store.blob_records import BlobRecords
    from parley_server.store.invites import InviteStore
    from parley_server.store.reach import ReachStore
    from parley_server.store.redis import RedisStore
    from parley_server.store.redis_admin import RedisAdminStore
    from parley_server.store.redis_blob_records import RedisBlobRecords
    from parley_server.store.redis_invites import RedisInviteStore
    from parley_server.store.redis_keydir import RedisKeyDirectory
    from parley_server.store.redis_provisioning import RedisProvisioning
    from parley_server.store.redis_reach import RedisReachStore
    from parley_server.store.redis_social import RedisSocialStore

    main = RedisStore(
        settings.store,
        prefix=settings.redis_prefix,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
    )
    stores = Stores(
        "redis",
        main=main,
        social=RedisSocialStore(main),
        keys=RedisKeyDirectory(main),
        provisioning=RedisProvisioning(main),
    )
    stores.add(AdminStore, RedisAdminStore(main))  # type: ignore[type-abstract]
    stores.add(BlobRecords, RedisBlobRecords(main))  # type: ignore[type-abstract]
    stores.add(ReachStore, RedisReachStore(main))  # type: ignore[type-abstract]
    stores.add(InviteStore, RedisInviteStore(main))  # type: ignore[type-abstract]
    # further domains: stores.add(SomeDomainStore, RedisSomeDomainStore(main))
    return stores


def build_stores(settings: Settings) -> Stores:
    """Every store domain for ``settings.store``, not yet opened (``await stores.open()``)."""
    if settings.store.startswith(("redis://", "rediss://", "redis+cluster://", "unix://")):
        return _build_redis(settings)
    if settings.store not in ("", "sqlite"):
        raise ValueError(f"unknown store {settings.store!r} (sqlite or redis://...)")
    return _build_sqlite(settings)


async def open_stores(settings: Settings) -> Stores:
    """``build_stores`` and open them (for commands and tests; the app opens in its lifespan)."""
    stores = build_stores(settings)
    await stores.open()
    return stores


__all__ = ["Stores", "build_stores", "open_stores"]
