"""A read that fetched a key's old value while ``set`` wrote the new one
never stores the old value in L1 after the write.

Found by the fork test (``test_fork.py``), in one process, with no fork
involved: ``set`` dropped the key from L1, took its snapshot, wrote Redis
and filled L1; a read in another thread took its snapshot after that drop,
fetched the old value from Redis before the write, and filled L1 after the
write's own fill. Its snapshot was still current, so the old value stayed in
L1, served until the next invalidation (the write's own bus message is not
applied by the process that sent it). This drives that interleaving.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from freshcache import L1, Cache

pytestmark = pytest.mark.redis

WAIT = 10.0


def test_a_read_of_the_old_value_does_not_fill_l1_after_the_write(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    with Cache(redis_url, prefix=key_prefix, l1=L1(max_staleness=None)) as cache:
        assert cache.set("k", "old")
        cache.engine.flush_local()  # in Redis only: the read below goes there
        store = cache.engine.l2
        assert store is not None
        real_get, real_put_many = store.get, store.put_many
        fetched, may_fill = threading.Event(), threading.Event()
        read: list[Any] = []

        def get(key: str) -> Any:
            hit = real_get(key)  # the old value: the write has not reached Redis
            fetched.set()
            assert may_fill.wait(WAIT)
            return hit

        def reader() -> None:
            read.append(cache.get("k"))

        def put_many(items: Any) -> None:
            # The write has dropped the key from L1 and taken its snapshot:
            # a read starts now, and fetches the old value.
            thread.start()
            assert fetched.wait(WAIT)
            real_put_many(items)

        thread = threading.Thread(target=reader)
        store.get = get  # type: ignore[method-assign]
        store.put_many = put_many  # type: ignore[method-assign]
        try:
            assert cache.set("k", "new")
        finally:
            store.put_many = real_put_many  # type: ignore[method-assign]
            may_fill.set()  # the read stores what it fetched, after the write
            thread.join(WAIT)
            store.get = real_get  # type: ignore[method-assign]
        assert read == ["old"]  # concurrent with the write: either is fine
        assert cache.get("k") == "new"  # after it: only the new value
