"""Session fixtures of the integration tests beyond the root conftest: the test Redis servers
(started on their own loopback ports by tests/support/redis_servers.py, on first use)."""

from tests.support.redis_servers import redis_cluster, redis_server

__all__ = ["redis_cluster", "redis_server"]
