"""``FreshCache``: freshcache behind Django's cache API (a ``CACHES`` backend).

Django's contract, kept exactly (Django's own cache test suite runs against
it, sync and async: ``docs/django.md``): ``None`` is a value; a timeout of
0 (or less) means "do not keep", ``None`` "never expire"; ``add`` never
overwrites; ``incr``/``decr`` are atomic and raise ``ValueError`` for a
missing key; ``set_many`` returns the keys it could not store; keys are
validated with Django's warnings; any picklable value is stored, signed.

Each Django alias is a thin object (Django makes one per thread); the
freshcache caches behind it (a ``Cache`` for the sync methods, one
``AsyncCache`` per event loop for the native ``a*`` methods) are shared by
every alias with the same ``LOCATION`` and ``OPTIONS``, and live until
``close_all()`` (Django's ``close()`` after each request keeps them).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

from freshcache import (
    L1,
    MISS,
    AsyncCache,
    Cache,
    SerializationError,
    ValueTooLargeError,
)

__all__ = ["FreshCache", "close_all"]

NAMESPACE: Final = "dj"
"""The freshcache namespace of every key stored through Django's API."""

_TEN_YEARS: Final = 10 * 365 * 24 * 3600  # freshcache's longest TTL
_FORBIDDEN: Final = frozenset({"serializer", "url", "client", "strict", "clock"})


class _Shared:
    """The freshcache caches behind every alias of one configuration."""

    def __init__(self, location: str | None, options: dict[str, Any]) -> None:
        self.location = location
        self.options = options
        self.lock = threading.Lock()
        self._sync: Cache | None = None
        self._per_loop: dict[asyncio.AbstractEventLoop, AsyncCache] = {}

    def sync(self) -> Cache:
        cache = self._sync
        if cache is None:
            with self.lock:
                if self._sync is None:
                    self._sync = Cache(self.location, **self.options)
                cache = self._sync
        return cache

    def for_loop(self) -> AsyncCache:
        """This event loop's ``AsyncCache`` (an ``AsyncCache`` serves one loop
        at a time): Django runs async code in several loops over a process's
        life (``async_to_sync`` makes one per call under WSGI)."""
        loop = asyncio.get_running_loop()
        cache = self._per_loop.get(loop)
        if cache is None:
            with self.lock:
                # A closed loop's cache closed with it (freshcache closes an
                # AsyncCache's connections when its loop ends): forget it.
                for old in [old for old in self._per_loop if old.is_closed()]:
                    del self._per_loop[old]
                cache = self._per_loop.get(loop)
                if cache is None:
                    cache = AsyncCache(self.location, **self.options)
                    self._per_loop[loop] = cache
        return cache

    def close(self) -> None:
        with self.lock:
            sync, self._sync = self._sync, None
            self._per_loop = {}
        if sync is not None:
            sync.close()


_SHARED: dict[tuple[str | None, str], _Shared] = {}
_SHARED_LOCK = threading.Lock()


def close_all() -> None:
    """Close every freshcache cache made for Django (at process exit, or
    between tests); the next call through Django makes new ones. Async
    caches close with their event loop."""
    with _SHARED_LOCK:
        shared = list(_SHARED.values())
        _SHARED.clear()
    for one in shared:
        one.close()


def _secret(options: Mapping[str, Any]) -> bytes | str:
    """The HMAC key of the signed pickle: ``OPTIONS["secret"]``, else one
    derived from ``SECRET_KEY`` (changing it makes every cached value a
    miss, never a wrong value)."""
    given = options.get("secret")
    if given:
        return given  # type: ignore[no-any-return]
    key = getattr(settings, "SECRET_KEY", "")
    if not key:
        raise ImproperlyConfigured(
            "FreshCache signs its pickled values: set SECRET_KEY, or give "
            "OPTIONS['secret']"
        )
    raw = key.encode() if isinstance(key, str) else bytes(key)
    return hashlib.sha256(b"freshcache.contrib.django:" + raw).digest()


def _options(params: Mapping[str, Any]) -> dict[str, Any]:
    """freshcache's keyword options from ``OPTIONS`` (lower-case names, as
    ``Cache`` takes them); ``l1`` may be a dict of ``L1`` options."""
    given = dict(params.get("OPTIONS") or {})
    bad = sorted(_FORBIDDEN & given.keys())
    if bad:
        raise ImproperlyConfigured(
            f"FreshCache OPTIONS cannot set {', '.join(bad)}: Django's contract "
            "needs signed pickle, and the URL is LOCATION"
        )
    options = {k: v for k, v in given.items() if k != "secret"}
    options.setdefault("prefix", "django")
    l1 = options.get("l1")
    if isinstance(l1, Mapping):
        l1 = L1(**{"copy": True, **l1})
    if l1 is not None and not l1.copy:
        raise ImproperlyConfigured(
            "FreshCache needs an L1 with copy=True: Django's callers may change "
            "what get() returns, and must not change the cached value"
        )
    options["l1"] = l1
    options["serializer"] = "pickle"
    options["secret"] = _secret(given)
    options["strict"] = True  # an unpicklable value raises, as in Django
    return options


def _shared(location: str | list[str] | None, params: Mapping[str, Any]) -> _Shared:
    if isinstance(location, list | tuple):
        if len(location) != 1:
            raise ImproperlyConfigured("FreshCache takes one LOCATION (a Redis URL)")
        location = location[0]
    location = location or None  # "": the embedded cache
    options = _options(params)
    ident = (location, repr(sorted(options.items(), key=lambda kv: kv[0])))
    with _SHARED_LOCK:
        shared = _SHARED.get(ident)
        if shared is None:
            shared = _SHARED[ident] = _Shared(location, options)
        return shared


def _stored(call: Callable[[], Any]) -> Any:
    """``call()``, with a value pickle refuses raised as pickle raised it
    (Django's callers expect ``pickle.PickleError`` and the like)."""
    try:
        return call()
    except SerializationError as exc:
        cause = exc.__cause__
        if isinstance(cause, Exception):
            raise cause from None
        raise


class FreshCache(BaseCache):
    """A Django cache backend on freshcache: Redis (``LOCATION``, a
    ``redis://`` URL; empty: the embedded in-process cache), an optional L1
    (``OPTIONS["l1"]``), single flight for ``get_or_set`` with a callable,
    and freshcache's failure policy (Redis down: reads miss, writes are
    skipped; ``incr`` raises ``StoreError``).

    ``OPTIONS`` takes ``Cache``'s keyword options (``prefix``, default
    ``"django"``; ``version``; ``l1``, a dict of ``L1`` options or an ``L1``
    with ``copy=True``; ``timeout``, freshcache's per-call deadline in
    seconds; ``max_connections``; ``secret``, default derived from
    ``SECRET_KEY``...), and ``TIMEOUT``, ``KEY_PREFIX``, ``VERSION`` and
    ``KEY_FUNCTION`` mean what they mean in Django.
    """

    def __init__(self, server: str | list[str] | None, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._shared = _shared(server, params)

    # -- the freshcache caches behind the alias ----------------------------

    @property
    def cache(self) -> Cache:
        """The freshcache ``Cache`` the sync methods use (shared)."""
        return self._shared.sync()

    def async_cache(self) -> AsyncCache:
        """The freshcache ``AsyncCache`` of the running event loop."""
        return self._shared.for_loop()

    def fresh_key(self, key: str, version: int | None = None) -> str:
        """The freshcache key of a Django key (validated with Django's
        warnings, under ``KEY_PREFIX`` and the version)."""
        return self._key(self.cache, key, version)

    def _key(self, cache: Cache | AsyncCache, key: str, version: int | None) -> str:
        return cache.key(NAMESPACE, self.make_and_validate_key(key, version=version))

    def _ttl(self, timeout: Any) -> float | bool | None:
        """freshcache's TTL for a Django timeout: seconds, None (forever),
        or False: do not keep (0 or less)."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        seconds = float(timeout)
        if not seconds > 0:
            return False
        if math.isinf(seconds) or seconds > _TEN_YEARS:
            return None
        return seconds

    # -- sync --------------------------------------------------------------

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        value = self.cache.get(self.fresh_key(key, version))
        return default if value is MISS else value

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> None:  # fmt: skip
        fresh, ttl = self.fresh_key(key, version), self._ttl(timeout)
        if ttl is False:
            self.cache.delete(fresh)
            return
        try:
            _stored(lambda: self.cache.set(fresh, value, ttl=ttl))
        except ValueTooLargeError:
            self.cache.delete(fresh)  # as memcached: never the older value

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> bool:  # fmt: skip
        fresh, ttl = self.fresh_key(key, version), self._ttl(timeout)
        if ttl is False:
            return self.cache.get(fresh) is MISS
        try:
            return bool(_stored(lambda: self.cache.add(fresh, value, ttl=ttl)))
        except ValueTooLargeError:
            return False

    def touch(
        self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        fresh, ttl = self.fresh_key(key, version), self._ttl(timeout)
        if ttl is False:
            return self.cache.delete(fresh)
        return self.cache.touch(fresh, ttl=ttl)

    def delete(self, key: str, version: int | None = None) -> bool:
        return self.cache.delete(self.fresh_key(key, version))

    def get_many(
        self, keys: Iterable[str], version: int | None = None
    ) -> dict[str, Any]:
        fresh = {self.fresh_key(k, version): k for k in keys}
        found = self.cache.get_many(fresh)
        return {fresh[f]: v for f, v in found.items()}

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self.cache.get(self.fresh_key(key, version)) is not MISS

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        try:
            return self.cache.incr(self.fresh_key(key, version), delta)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None

    def set_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> list[str]:  # fmt: skip
        fresh = {self.fresh_key(k, version): v for k, v in data.items()}
        ttl = self._ttl(timeout)
        if not fresh:
            return []
        if ttl is False:
            self.cache.invalidate(*fresh)
            return []
        try:
            if _stored(lambda: self.cache.set_many(fresh, ttl=ttl)):
                return []
        except ValueTooLargeError:  # which ones: one at a time
            failed = []
            for (key, value), f in zip(data.items(), fresh, strict=True):
                try:
                    stored = self.cache.set(f, value, ttl=ttl)
                except ValueTooLargeError:
                    self.cache.delete(f)
                    stored = False
                if not stored:
                    failed.append(key)
            return failed
        return list(data)

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        fresh = [self.fresh_key(k, version) for k in keys]
        if fresh:
            self.cache.invalidate(*fresh)

    def get_or_set(
        self, key: str, default: Any, timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:  # fmt: skip
        """A callable ``default`` is loaded with freshcache's single flight
        (one call per key across threads and processes) under a fill lease."""
        ttl = self._ttl(timeout)
        if not callable(default) or ttl is False:
            return super().get_or_set(key, default, timeout, version)
        fresh = self.fresh_key(key, version)
        return _stored(lambda: self.cache.get_or_load(fresh, default, ttl=ttl))

    def clear(self) -> None:
        """Remove every value of this freshcache ``prefix`` and ``version``
        (every alias sharing them), in every process; never FLUSHDB."""
        self.cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Django calls it after every request: the shared caches stay open
        (they are closed by ``close_all()``)."""

    # -- async: freshcache's own async path, no thread pool ------------------

    async def aget(
        self, key: str, default: Any = None, version: int | None = None
    ) -> Any:
        cache = self.async_cache()
        value = await cache.get(self._key(cache, key, version))
        return default if value is MISS else value

    async def aset(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> None:  # fmt: skip
        cache = self.async_cache()
        fresh, ttl = self._key(cache, key, version), self._ttl(timeout)
        if ttl is False:
            await cache.delete(fresh)
            return
        try:
            await _astored(cache.set(fresh, value, ttl=ttl))
        except ValueTooLargeError:
            await cache.delete(fresh)

    async def aadd(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> bool:  # fmt: skip
        cache = self.async_cache()
        fresh, ttl = self._key(cache, key, version), self._ttl(timeout)
        if ttl is False:
            return await cache.get(fresh) is MISS
        try:
            return bool(await _astored(cache.add(fresh, value, ttl=ttl)))
        except ValueTooLargeError:
            return False

    async def atouch(
        self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        cache = self.async_cache()
        fresh, ttl = self._key(cache, key, version), self._ttl(timeout)
        if ttl is False:
            return await cache.delete(fresh)
        return await cache.touch(fresh, ttl=ttl)

    async def adelete(self, key: str, version: int | None = None) -> bool:
        cache = self.async_cache()
        return await cache.delete(self._key(cache, key, version))

    async def aget_many(
        self, keys: Iterable[str], version: int | None = None
    ) -> dict[str, Any]:
        cache = self.async_cache()
        fresh = {self._key(cache, k, version): k for k in keys}
        found = await cache.get_many(fresh)
        return {fresh[f]: v for f, v in found.items()}

    async def ahas_key(self, key: str, version: int | None = None) -> bool:
        cache = self.async_cache()
        value = await cache.get(self._key(cache, key, version))
        return value is not MISS

    async def aincr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        cache = self.async_cache()
        try:
            return await cache.incr(self._key(cache, key, version), delta)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None

    async def aset_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> list[str]:  # fmt: skip
        cache = self.async_cache()
        fresh = {self._key(cache, k, version): v for k, v in data.items()}
        ttl = self._ttl(timeout)
        if not fresh:
            return []
        if ttl is False:
            await cache.invalidate(*fresh)
            return []
        try:
            if await _astored(cache.set_many(fresh, ttl=ttl)):
                return []
        except ValueTooLargeError:
            failed = []
            for (key, value), f in zip(data.items(), fresh, strict=True):
                try:
                    stored = await cache.set(f, value, ttl=ttl)
                except ValueTooLargeError:
                    await cache.delete(f)
                    stored = False
                if not stored:
                    failed.append(key)
            return failed
        return list(data)

    async def adelete_many(
        self, keys: Iterable[str], version: int | None = None
    ) -> None:
        cache = self.async_cache()
        fresh = [self._key(cache, k, version) for k in keys]
        if fresh:
            await cache.invalidate(*fresh)

    async def aget_or_set(
        self, key: str, default: Any, timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:  # fmt: skip
        ttl = self._ttl(timeout)
        if not callable(default) or ttl is False:
            return await super().aget_or_set(key, default, timeout, version)
        cache = self.async_cache()
        fresh = self._key(cache, key, version)
        return await _astored(cache.get_or_load(fresh, default, ttl=ttl))

    async def aclear(self) -> None:
        await self.async_cache().clear()

    async def aclose(self, **kwargs: Any) -> None:
        """As ``close``: nothing to do after a request."""


async def _astored(call: Any) -> Any:
    """``_stored`` for a coroutine."""
    try:
        return await call
    except SerializationError as exc:
        cause = exc.__cause__
        if isinstance(cause, Exception):
            raise cause from None
        raise
