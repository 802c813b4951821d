"""Django's Redis cache (services mode) with one redis-py client per connection pool.

Django's RedisCacheClient builds a new `redis.Redis` for every cache operation, and each one copies
redis-py's ~170 response callbacks into a new dict: profiled in the upload view, where the two
upload throttles read and write the cache, 4 clients a request and ~0.5 ms of CPU each. A client
holds no connection of its own (each command takes one from the pool) and is safe to share
between threads, so one per pool is kept.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key=None, *, write: bool = False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:  # two threads may both build one: harmless, the last is kept
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
