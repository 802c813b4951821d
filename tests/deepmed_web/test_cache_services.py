"""The Redis cache of services mode (deepmed_web/cache.py) against the real Redis."""

import pytest
from django.core.cache import caches

from deepmed_web.cache import RedisCache

pytestmark = pytest.mark.services


def test_the_configured_cache_shares_its_client_and_round_trips():
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    cache.set("deepmed-test-cache", {"n": 1}, 30)
    assert cache.get("deepmed-test-cache") == {"n": 1}
    assert cache._cache.get_client() is cache._cache.get_client(write=True)
    cache.delete("deepmed-test-cache")
    assert cache.get("deepmed-test-cache") is None
