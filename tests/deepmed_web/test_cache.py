"""deepmed_web/cache.py: the Redis cache keeps one redis-py client per connection pool (Django's
builds one per operation). No server is needed: a client connects only when it runs a command."""

import redis

from deepmed_web.cache import RedisCache


def test_every_operation_gets_the_same_client(monkeypatch):
    built = []
    real = redis.Redis

    class CountingRedis(real):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("connection_pool"))
            super().__init__(*args, **kwargs)

    cache = RedisCache("redis://127.0.0.1:6379/15", {})
    cache._cache._client = CountingRedis  # what RedisCacheClient builds its clients from
    clients = {id(cache._cache.get_client("k", write=write)) for write in (False, True, False, True)}
    assert len(clients) == 1 and len(built) == 1
    assert built[0] is cache._cache._get_connection_pool(write=True)  # over Django's one pool
