"""freshcache's cache contract, as test classes to subclass.

``AsyncCacheContract`` (for ``AsyncCache``) and ``CacheContract`` (for
``Cache``) are the tests freshcache runs on its own configurations: the
embedded default, Redis, and an L1 over Redis. Subclass one, override its
``make_cache`` fixture with your configuration, and pytest runs the contract
on it::

    import functools

    import pytest

    from freshcache import L1, Cache
    from freshcache.testing.contract import CacheContract


    class TestOurCache(CacheContract):
        @pytest.fixture
        def make_cache(self):
            return functools.partial(Cache, "redis://localhost:6379/0", l1=L1())

The class docstrings list what the contract needs from a configuration.

This module imports pytest (and the async contract pytest-asyncio), which
freshcache does not depend on: it is imported only when you name it, never
by ``import freshcache`` or ``import freshcache.testing``. It asks pytest to
rewrite the contract's asserts, so a failing test shows its values.
"""

from __future__ import annotations

import pytest

# Before the imports below: a module is rewritten only if registered first.
pytest.register_assert_rewrite(
    "freshcache.testing._async.contract", "freshcache.testing._sync.contract"
)

from freshcache.testing._async.contract import AsyncCacheContract  # noqa: E402
from freshcache.testing._sync.contract import CacheContract  # noqa: E402

__all__ = ["AsyncCacheContract", "CacheContract"]
