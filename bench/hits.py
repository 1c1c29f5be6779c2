"""``python -m bench hits``: the cost of a cache hit, freshcache against peers.

Targets P1-P3 (docs/performance.md), each reported as a ratio to a baseline
measured in the same run:

* P1  L1 hit through the decorator: sync vs ``functools.lru_cache``, async
  vs ``await`` of a trivial coroutine; diagnostic rows with each Prometheus
  exporter on (``freshcache.contrib.prometheus``: the one-process collector,
  and multiprocess mode's copying thread) and with OpenTelemetry on
  (``freshcache.contrib.otel``: observable instruments and spans, and with
  latency histograms too), to compare with the row with none.
* P2  L2 (Redis) hit through the decorator vs a raw redis-py GET +
  ``json.loads`` (sync and async).
* P3  asyncio throughput, 100 tasks doing L2 hits vs raw ``redis.asyncio``
  GET + ``json.loads``, pools of equal size.

Every peer is optional: one that fails to import or run is printed as
``n/a: reason`` and the run goes on. Every decorated function counts its
loader calls; a row whose loader ran again after warm-up is flagged, because
then it measured misses, not hits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlparse

import orjson

from bench._meta import git_commit, version_of
from bench._timing import (
    Row,
    Section,
    abest_per_call,
    asample_calls,
    async_loop,
    best_per_call,
    render,
    sample_calls,
    sync_loop,
    throughput,
    verdict,
    write_json,
)

VALUE: dict[str, Any] = {"id": 1, "name": "Ada", "team": 7, "tags": ["a", "b"]}
USER_ID = 1
TTL = 600

P1_SYNC_TARGET = 4.0
P1_ASYNC_TARGET = 3.0
P2_TARGET = 1.10
P3_TARGET = 0.9


@dataclass(frozen=True)
class Config:
    quick: bool
    redis_url: str
    pool_size: int
    tasks: int
    total: int

    @property
    def repeats(self) -> int:  # in-process repeats (best of)
        return 5 if self.quick else 15

    @property
    def min_seconds(self) -> float:  # length of one in-process loop
        return 0.005 if self.quick else 0.02

    @property
    def round_trips(self) -> int:  # timed round trips per library
        return 400 if self.quick else 5000

    @property
    def rounds(self) -> int:  # throughput rounds per library (best of)
        return 2 if self.quick else 5

    @property
    def warmup(self) -> int:
        return 50 if self.quick else 500


# -- loaders that count their calls ------------------------------------------


class Counter:
    """Loader calls; ``mark()`` after warm-up, so that later calls show as misses."""

    def __init__(self) -> None:
        self.calls = 0
        self.warm = 0
        self.stats: Callable[[], Any] | None = None  # freshcache: cache.stats
        self.errors_at_mark: dict[str, int] = {}

    def errors(self) -> dict[str, int]:
        """freshcache errors counted since ``mark()`` (timeouts, open circuit...)."""
        if self.stats is None:
            return {}
        now = dict(self.stats().errors)
        return {
            k: v - self.errors_at_mark.get(k, 0)
            for k, v in now.items()
            if v - self.errors_at_mark.get(k, 0) > 0
        }

    def mark(self) -> None:
        self.warm = self.calls
        if self.stats is not None:
            self.errors_at_mark = dict(self.stats().errors)


def make_loader(counter: Counter) -> Callable[[int], dict[str, Any]]:
    def get_user(user_id: int) -> dict:  # type: ignore[type-arg]
        counter.calls += 1
        return dict(VALUE, id=user_id)

    return get_user


def make_aloader(counter: Counter) -> Callable[[int], Awaitable[dict[str, Any]]]:
    async def aget_user(user_id: int) -> dict:  # type: ignore[type-arg]
        counter.calls += 1
        return dict(VALUE, id=user_id)

    return aget_user


def hit_note(counter: Counter | None) -> str:
    if counter is None:
        return ""
    notes = []
    if counter.calls > counter.warm:
        notes.append(
            f"NOT ALL HITS: loader ran {counter.calls - counter.warm} times "
            "after warm-up (counted over all timed calls)"
        )
    errors = counter.errors()
    if errors:
        notes.append(
            "freshcache errors: "
            + ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))
        )
    return "; ".join(notes)


def reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return "n/a: " + (text if len(text) < 120 else text[:117] + "...")


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Peers log exceptions they swallow; keep the tables readable."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


# -- candidates ----------------------------------------------------------------
#
# A candidate factory returns (callable, counter or None); it may register
# cleanups on the ExitStack. Raising means "n/a" for that row.

Factory = Callable[[ExitStack], tuple[Callable[[Any], Any], Counter | None]]


def _fc_prefix() -> str:
    return f"fcbench{os.getpid()}"


def export(stack: ExitStack | AsyncExitStack, cache: Any, how: str | None) -> None:
    """Export ``cache`` to Prometheus for the rows that measure exporters:
    ``"collector"`` (one process: read at scrape), ``"multiprocess"``
    (prometheus-client's multiprocess mode: a thread copies the stats into
    its files every second). The hit path is the same code either way."""
    if how is None:
        return
    if how.startswith("otel"):
        export_otel(stack, cache)
        return
    import shutil
    import tempfile

    from freshcache.contrib.prometheus import MULTIPROC_VARIABLE, instrument

    if how == "collector":
        from prometheus_client import CollectorRegistry

        stack.callback(instrument(cache, registry=CollectorRegistry()).close)
        return
    folder = tempfile.mkdtemp(prefix="fcbench-prom-")
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    os.environ[MULTIPROC_VARIABLE] = folder
    try:
        stack.callback(instrument(cache, name=f"bench{id(cache)}").close)
    finally:
        del os.environ[MULTIPROC_VARIABLE]


def export_options(how: str | None) -> dict[str, Any]:
    """The cache's options for the OpenTelemetry rows, made before it:
    ``"otel"`` traces through ``OtelTracing`` (an SDK tracer provider with
    an in-memory exporter); ``"otel-histograms"`` also records latency
    histograms (``OtelHistograms``, on an SDK meter provider)."""
    if how not in ("otel", "otel-histograms"):
        return {}
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from freshcache.contrib.otel import OtelHistograms, OtelTracing

    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    options: dict[str, Any] = {"tracing": OtelTracing(tracer_provider=tracers)}
    if how == "otel-histograms":
        meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
        options["metrics"] = OtelHistograms(meter_provider=meters)
    return options


def export_otel(stack: ExitStack | AsyncExitStack, cache: Any) -> None:
    """``instrument``: observable instruments on an SDK meter provider whose
    in-memory reader collects when asked (as a periodic reader would, at its
    own pace: the hit path is the same code either way)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from freshcache.contrib.otel import instrument

    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    stack.callback(instrument(cache, meter_provider=meters).close)
    stack.callback(meters.shutdown)


EXPORTERS = {
    "freshcache + Prometheus, multiprocess (diagnostic)": "multiprocess",
    "freshcache + Prometheus collector (diagnostic)": "collector",
    "freshcache + OpenTelemetry metrics and spans (diagnostic)": "otel",
    "freshcache + OpenTelemetry, histograms too (diagnostic)": "otel-histograms",
}


def sync_l1_candidates(redis_url: str | None = None) -> dict[str, Factory]:
    """The P1-sync rows; with ``redis_url`` also L1 over Redis, with the
    staleness bound's check and without it (what the check costs a hit)."""

    def lru(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
        counter = Counter()
        return functools.lru_cache(maxsize=128)(make_loader(counter)), counter

    def freshcache(
        stack: ExitStack, exporter: str | None = None, **kwargs: Any
    ) -> tuple[Callable[[Any], Any], Counter]:
        from freshcache import Cache

        options = export_options(exporter) | kwargs
        cache = Cache(prefix=_fc_prefix(), version="v1", **options)
        stack.callback(cache.close)
        export(stack, cache, exporter)
        counter = Counter()
        counter.stats = cache.stats
        return cache.cached("user:{user_id}", ttl=TTL)(make_loader(counter)), counter

    def freshcache_null(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
        from freshcache import NullMetrics

        return freshcache(stack, metrics=NullMetrics())

    def over_redis(bound: float | None, publish: float | None = None) -> Factory:
        def make(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
            from freshcache import L1

            return freshcache(
                stack, url=redis_url, l1=L1(max_staleness=bound),
                publish_stats=publish,
            )  # fmt: skip

        return make

    def cachetools_lru(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
        import cachetools

        counter = Counter()
        return cachetools.cached(cachetools.LRUCache(maxsize=1024))(
            make_loader(counter)
        ), counter

    def cachetools_ttl(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
        import cachetools

        counter = Counter()
        cache = cachetools.TTLCache(maxsize=1024, ttl=TTL)
        return cachetools.cached(cache)(make_loader(counter)), counter

    def cachebox_lru(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
        import cachebox

        counter = Counter()
        return cachebox.cached(cachebox.LRUCache(1024))(make_loader(counter)), counter

    def theine_memoize(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
        import theine

        counter = Counter()
        fn: Any = theine.Memoize(1024, timedelta(seconds=TTL))(make_loader(counter))

        @fn.key
        def _(user_id: int) -> str:
            return f"user:{user_id}"

        stack.callback(fn._cache.close)
        return fn, counter

    def exported(how: str) -> Factory:
        return functools.partial(freshcache, exporter=how)

    return {
        "functools.lru_cache (baseline)": lru,
        "freshcache Cache() @cached": freshcache,
        **{name: exported(how) for name, how in EXPORTERS.items()},
        "freshcache, NullMetrics (diagnostic)": freshcache_null,
        "cachetools.cached(LRUCache)": cachetools_lru,
        "cachetools.cached(TTLCache)": cachetools_ttl,
        "cachebox.cached(LRUCache)": cachebox_lru,
        "theine Memoize (key fn)": theine_memoize,
    } | _over_redis(redis_url, over_redis)


def _over_redis(
    redis_url: str | None, make: Callable[[float | None, float | None], _F]
) -> dict[str, _F]:
    if redis_url is None:
        return {}
    return {
        "freshcache L1() over Redis (diagnostic)": make(0.1, None),
        "freshcache L1() over Redis, publish_stats=1 (diagnostic)": make(0.1, 1.0),
        "freshcache L1(max_staleness=None) over Redis (diagnostic)": make(None, None),
    }


_F = TypeVar("_F")
AFactory = Callable[
    [ExitStack], Awaitable[tuple[Callable[[Any], Awaitable[Any]], Counter | None]]
]


L1Factory = Callable[
    [AsyncExitStack], Awaitable[tuple[Callable[[Any], Awaitable[Any]], Counter | None]]
]


def async_l1_candidates(redis_url: str | None = None) -> dict[str, L1Factory]:
    """The P1-async rows (with ``redis_url``: as ``sync_l1_candidates``)."""

    async def trivial(
        stack: AsyncExitStack,
    ) -> tuple[Callable[[Any], Awaitable[Any]], None]:
        async def f(x: Any) -> Any:
            return x

        return f, None

    async def freshcache(
        stack: AsyncExitStack, exporter: str | None = None, **kwargs: Any
    ) -> tuple[Any, Counter]:
        from freshcache import AsyncCache

        options = export_options(exporter) | kwargs
        cache = AsyncCache(prefix=_fc_prefix(), version="v1", **options)
        stack.push_async_callback(cache.aclose)
        export(stack, cache, exporter)
        counter = Counter()
        counter.stats = cache.stats
        return cache.cached("user:{user_id}", ttl=TTL)(make_aloader(counter)), counter

    async def freshcache_null(stack: AsyncExitStack) -> tuple[Any, Counter]:
        from freshcache import NullMetrics

        return await freshcache(stack, metrics=NullMetrics())

    def over_redis(bound: float | None, publish: float | None = None) -> L1Factory:
        async def make(stack: AsyncExitStack) -> tuple[Any, Counter]:
            from freshcache import L1

            return await freshcache(
                stack, url=redis_url, l1=L1(max_staleness=bound),
                publish_stats=publish,
            )  # fmt: skip

        return make

    async def cashews_mem(stack: AsyncExitStack) -> tuple[Any, Counter]:
        import cashews

        cache = cashews.Cache()
        cache.setup("mem://")
        counter = Counter()
        return cache(ttl=TTL, key="user:{user_id}")(make_aloader(counter)), counter

    async def aiocache_mem(stack: AsyncExitStack) -> tuple[Any, Counter]:
        from aiocache import SimpleMemoryCache, cached

        counter = Counter()
        decorator = cached(
            ttl=TTL,
            cache=SimpleMemoryCache,
            key_builder=lambda f, user_id: f"user:{user_id}",
        )
        return decorator(make_aloader(counter)), counter

    async def theine_memoize(stack: AsyncExitStack) -> tuple[Any, Counter]:
        import theine

        counter = Counter()
        fn: Any = theine.Memoize(1024, timedelta(seconds=TTL))(make_aloader(counter))

        @fn.key
        def _(user_id: int) -> str:
            return f"user:{user_id}"

        stack.callback(fn._cache.close)
        return fn, counter

    def exported(how: str) -> L1Factory:
        return functools.partial(freshcache, exporter=how)

    rows: dict[str, L1Factory] = {
        "await trivial coroutine (baseline)": trivial,
        "freshcache AsyncCache() @cached": freshcache,
        **{name: exported(how) for name, how in EXPORTERS.items()},
        "freshcache, NullMetrics (diagnostic)": freshcache_null,
        "cashews mem:// @cache": cashews_mem,
        "aiocache @cached(SimpleMemoryCache)": aiocache_mem,
        "theine Memoize async (key fn)": theine_memoize,
    }
    return rows | _over_redis(redis_url, over_redis)


# -- P1 -------------------------------------------------------------------------


def p1_sync(cfg: Config) -> Section:
    section = Section(
        id="P1-sync",
        title="L1 hit through the sync decorator",
        baseline="functools.lru_cache(maxsize=128) hit",
        estimator=(
            f"best of {cfg.repeats} loops of >= {cfg.min_seconds * 1000:.0f} ms "
            "(calls unrolled x10), libraries interleaved"
        ),
    )
    with ExitStack() as stack:
        built: dict[str, tuple[Callable[[Any], Any], Counter | None]] = {}
        failed: dict[str, str] = {}
        for name, factory in sync_l1_candidates(cfg.redis_url).items():
            try:
                fn, counter = factory(stack)
                result = fn(USER_ID)  # fill
                if fn(USER_ID) != result or result != VALUE:
                    raise AssertionError(f"wrong value: {result!r}")
                if counter is not None:
                    counter.mark()
                built[name] = (fn, counter)
            except Exception as exc:
                failed[name] = reason(exc)
        loops = {name: sync_loop(fn, USER_ID) for name, (fn, _) in built.items()}
        best = best_per_call(loops, repeats=cfg.repeats, min_seconds=cfg.min_seconds)
        _fill_rows(
            section,
            sync_l1_candidates(cfg.redis_url),
            best,
            failed,
            {n: c for n, (_, c) in built.items()},
            target=P1_SYNC_TARGET,
        )
    section.notes.append(
        "cachebox runs with its defaults: lock=True and postprocess_copy_mutables "
        "(a dict result is copied on every hit)"
    )
    return section


async def _p1_async(cfg: Config) -> Section:
    section = Section(
        id="P1-async",
        title="L1 hit through the async decorator",
        baseline="await of `async def f(x): return x`",
        estimator=(
            f"best of {cfg.repeats} loops of >= {cfg.min_seconds * 1000:.0f} ms "
            "(awaits unrolled x10, inside one coroutine), libraries interleaved"
        ),
    )
    async with AsyncExitStack() as stack:
        stack.enter_context(quiet_logs())
        built: dict[str, tuple[Any, Counter | None]] = {}
        failed: dict[str, str] = {}
        candidates = async_l1_candidates(cfg.redis_url)
        for name, factory in candidates.items():
            try:
                fn, counter = await factory(stack)
                result = await fn(USER_ID)
                second = await fn(USER_ID)
                if counter is not None and (second != result or result != VALUE):
                    raise AssertionError(f"wrong value: {result!r}")
                if counter is not None:
                    counter.mark()
                built[name] = (fn, counter)
            except Exception as exc:
                failed[name] = reason(exc)
        loops = {name: async_loop(fn, USER_ID) for name, (fn, _) in built.items()}
        best = await abest_per_call(
            loops, repeats=cfg.repeats, min_seconds=cfg.min_seconds
        )
        _fill_rows(
            section,
            candidates,
            best,
            failed,
            {n: c for n, (_, c) in built.items()},
            target=P1_ASYNC_TARGET,
        )
    return section


def p1_async(cfg: Config) -> Section:
    return asyncio.run(_p1_async(cfg))


def _fill_rows(
    section: Section,
    order: dict[str, Any],
    seconds: dict[str, float],
    failed: dict[str, str],
    counters: dict[str, Counter | None],
    *,
    target: float,
    at_least: bool = False,
    throughput_rows: bool = False,
    timed_calls: int | None = None,
) -> None:
    """Rows in candidate order; the first candidate is the baseline.

    A row whose loader ran after warm-up measured misses too: it is marked
    INVALID, unless ``timed_calls`` is known and the loader ran for at most
    1 % of them (then the verdict stands and the note says how many).
    """
    names = list(order)
    base_name = names[0]
    base = seconds.get(base_name)
    for name in names:
        if name in failed:
            section.rows.append(
                Row(name, None, note=failed[name], baseline=name == base_name)
            )
            continue
        value = seconds.get(name)
        if value is None:
            continue
        if base is None:
            ratio = None
        elif throughput_rows:
            ratio = base / value  # ops/s ratio: higher is better
        else:
            ratio = value / base
        row = Row(name, value, ratio=ratio, baseline=name == base_name)
        if throughput_rows:
            row.ops_per_s = 1.0 / value
        if name == base_name:
            row.target, row.verdict = "-", "baseline"
        elif name.startswith("freshcache") and "diagnostic" not in name:
            sign = ">=" if at_least else "<="
            row.target = f"{sign} {target:.2f}x"
            row.verdict = verdict(ratio, target, at_least=at_least)
        else:
            row.target, row.verdict = "-", "-"
        counter = counters.get(name)
        row.note = hit_note(counter)
        if counter is not None and counter.calls > counter.warm:
            loads = counter.calls - counter.warm
            row.extra["loader_calls_after_warmup"] = loads
            if timed_calls is None or loads > timed_calls / 100:
                row.verdict = "INVALID"
        section.rows.append(row)


# -- P2 / P3: Redis ----------------------------------------------------------------


@dataclass(frozen=True)
class RedisTarget:
    url: str
    host: str
    port: int
    db: int

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        parsed = urlparse(url)
        db = int(parsed.path.lstrip("/") or 0)
        return cls(url, parsed.hostname or "127.0.0.1", parsed.port or 6379, db)


def _seed_raw(target: RedisTarget, ids: range = range(1, 2)) -> None:
    """Store the baseline's JSON payloads under ``{prefix}:raw:user:{id}``."""
    import redis

    client = redis.Redis(host=target.host, port=target.port, db=target.db)
    try:
        for user_id in ids:
            payload = orjson.dumps(dict(VALUE, id=user_id))
            client.set(f"{_fc_prefix()}:raw:user:{user_id}", payload, ex=TTL)
    finally:
        client.close()


_INFO_CLIENTS: dict[RedisTarget, Any] = {}


def _commands(target: RedisTarget) -> int:
    """The server's ``total_commands_processed``, read over one kept connection
    (a new connection would add its own HELLO / CLIENT SETINFO to the count)."""
    import redis

    client = _INFO_CLIENTS.get(target)
    if client is None:
        client = _INFO_CLIENTS[target] = redis.Redis(
            host=target.host, port=target.port, db=target.db
        )
    return int(client.info("stats")["total_commands_processed"])


def commands_per_call(target: RedisTarget, calls: int, run: Callable[[], Any]) -> float:
    """Redis commands processed per call while ``run()`` made ``calls`` calls.

    Counts every client of the server: meaningful on an otherwise idle Redis.
    """
    before = _commands(target)
    run()
    # the second INFO sees the first one: subtract it
    return (_commands(target) - before - 1) / calls


async def acommands_per_call(
    target: RedisTarget, calls: int, run: Callable[[], Awaitable[Any]]
) -> float:
    before = _commands(target)
    await run()
    return (_commands(target) - before - 1) / calls


def cleanup_redis(target: RedisTarget) -> int:
    """Remove every key this run wrote (its prefix only; never FLUSHDB)."""
    import redis

    client = redis.Redis(host=target.host, port=target.port, db=target.db)
    removed = 0
    try:
        for key in client.scan_iter(match=_fc_prefix() + "*", count=1000):
            removed += client.unlink(key)
    finally:
        client.close()
    return removed


def sync_l2_candidates(target: RedisTarget, pool_size: int) -> dict[str, Factory]:
    prefix = _fc_prefix()

    def raw_json(stack: ExitStack) -> tuple[Callable[[Any], Any], None]:
        import redis

        _seed_raw(target)
        client = redis.Redis(host=target.host, port=target.port, db=target.db)
        stack.callback(client.close)
        get, loads = client.get, json.loads

        def fn(user_id: int) -> Any:
            return loads(get(f"{prefix}:raw:user:{user_id}"))

        return fn, None

    def raw_orjson(stack: ExitStack) -> tuple[Callable[[Any], Any], None]:
        import redis

        client = redis.Redis(host=target.host, port=target.port, db=target.db)
        stack.callback(client.close)
        get, loads = client.get, orjson.loads

        def fn(user_id: int) -> Any:
            return loads(get(f"{prefix}:raw:user:{user_id}"))

        return fn, None

    def raw_fc_client(stack: ExitStack) -> tuple[Callable[[Any], Any], None]:
        from freshcache import Cache

        cache = Cache(
            target.url, prefix=prefix, version="v1", max_connections=pool_size
        )
        stack.callback(cache.close)
        get, loads = cache.engine.l2._client.get, json.loads  # private: a diagnostic

        def fn(user_id: int) -> Any:
            return loads(get(f"{prefix}:raw:user:{user_id}"))

        return fn, None

    def freshcache(
        stack: ExitStack, exporter: str | None = None
    ) -> tuple[Callable[[Any], Any], Counter]:
        from freshcache import Cache

        cache = Cache(
            target.url, prefix=prefix, version="v1", max_connections=pool_size,
            **export_options(exporter),
        )  # fmt: skip
        stack.callback(cache.close)
        export(stack, cache, exporter)
        counter = Counter()
        counter.stats = cache.stats
        return cache.cached("user:{user_id}", ttl=TTL)(make_loader(counter)), counter

    def dogpile_redis(stack: ExitStack) -> tuple[Callable[[Any], Any], Counter]:
        from dogpile.cache import make_region

        region = make_region(
            key_mangler=lambda key: f"{prefix}:dogpile:{key}"
        ).configure(
            "dogpile.cache.redis",
            expiration_time=TTL,
            arguments={
                "host": target.host,
                "port": target.port,
                "db": target.db,
                "redis_expiration_time": TTL + 60,
                "distributed_lock": False,
            },
        )
        counter = Counter()
        return region.cache_on_arguments()(make_loader(counter)), counter

    return {
        "raw redis-py GET + json.loads (baseline)": raw_json,
        "freshcache Cache(redis) @cached": freshcache,
        "freshcache Cache(redis) + OpenTelemetry histograms (diagnostic)": (
            functools.partial(freshcache, exporter="otel-histograms")
        ),
        "raw redis-py GET + orjson.loads (diagnostic)": raw_orjson,
        "raw GET + json.loads on freshcache's redis client (diagnostic)": raw_fc_client,
        "dogpile.cache redis region": dogpile_redis,
    }


def _redis_rows(
    section: Section,
    order: dict[str, Any],
    samples: dict[str, Any],
    failed: dict[str, str],
    counters: dict[str, Counter | None],
) -> None:
    medians = {name: s.median / 1e9 for name, s in samples.items()}
    count = max((len(s.ns) for s in samples.values()), default=0)
    _fill_rows(
        section, order, medians, failed, counters, target=P2_TARGET, timed_calls=count
    )
    for row in section.rows:
        s = samples.get(row.library)
        if s is not None:
            row.extra |= {
                "n": len(s.ns),
                "p10_ns": s.quantile(0.10),
                "p25_ns": s.quantile(0.25),
                "median_ns": s.median,
                "p75_ns": s.quantile(0.75),
                "p90_ns": s.quantile(0.90),
                "p99_ns": s.quantile(0.99),
            }


def p2_sync(cfg: Config, target: RedisTarget) -> Section:
    section = Section(
        id="P2-sync",
        title="L2 (Redis) hit through the sync decorator",
        baseline="raw redis.Redis().get(key) + json.loads of the same JSON payload",
        estimator=(
            f"median of {cfg.round_trips} timed round trips per library, "
            "interleaved in blocks of 50"
        ),
    )
    candidates = sync_l2_candidates(target, cfg.pool_size)
    with ExitStack() as stack, quiet_logs():
        built: dict[str, tuple[Callable[[Any], Any], Counter | None]] = {}
        failed: dict[str, str] = {}
        for name, factory in candidates.items():
            try:
                fn, counter = factory(stack)
                first = fn(USER_ID)
                for _ in range(cfg.warmup):
                    fn(USER_ID)
                if fn(USER_ID) != VALUE or first != VALUE:
                    raise AssertionError(f"wrong value: {first!r}")
                if counter is not None:
                    counter.mark()
                built[name] = (fn, counter)
            except Exception as exc:
                failed[name] = reason(exc)
        samples = sample_calls(
            {name: fn for name, (fn, _) in built.items()},
            USER_ID,
            count=cfg.round_trips,
        )
        _redis_rows(
            section, candidates, samples, failed, {n: c for n, (_, c) in built.items()}
        )
        for row in section.rows:
            if row.library in built:
                fn = built[row.library][0]
                per = commands_per_call(
                    target, 100, lambda fn=fn: [fn(USER_ID) for _ in range(100)]
                )
                _add_commands(row, per)
    section.notes.append(
        "stored: freshcache envelope (40-byte header + 4-byte CRC-32 + orjson "
        "payload); baseline: "
        f"the same orjson payload ({len(orjson.dumps(VALUE))} bytes); dogpile pickles "
        "(its default)"
    )
    return section


async def _async_redis(cfg: Config, target: RedisTarget) -> tuple[Section, Section]:
    import redis.asyncio as aredis

    prefix = _fc_prefix()
    pool = cfg.pool_size
    keys = list(range(1, cfg.tasks + 1))  # P3: one key per task
    _seed_raw(target, range(1, cfg.tasks + 1))
    closers: list[Callable[[], Awaitable[Any]]] = []

    def raw_fn(
        client: Any, loads: Callable[[bytes], Any] = json.loads
    ) -> Callable[[int], Any]:
        get = client.get

        async def fn(user_id: int) -> Any:
            return loads(await get(f"{prefix}:raw:user:{user_id}"))

        return fn

    async def raw_default(stack: ExitStack) -> tuple[Any, None]:
        client = aredis.Redis(host=target.host, port=target.port, db=target.db)
        closers.append(client.aclose)
        return raw_fn(client), None

    async def raw_bounded(stack: ExitStack) -> tuple[Any, None]:
        blocking = aredis.BlockingConnectionPool(
            host=target.host,
            port=target.port,
            db=target.db,
            max_connections=pool,
            timeout=10,
        )
        client = aredis.Redis(connection_pool=blocking)
        closers.append(client.aclose)
        closers.append(blocking.aclose)
        return raw_fn(client), None

    async def raw_fc_client(stack: ExitStack) -> tuple[Any, None]:
        from freshcache import AsyncCache

        cache = AsyncCache(
            target.url, prefix=prefix, version="v1", max_connections=pool
        )
        closers.append(cache.aclose)
        return raw_fn(cache.engine.l2._client), None  # private: a diagnostic

    async def freshcache_patient(stack: ExitStack) -> tuple[Any, Counter]:
        return await freshcache(stack, timeout=1.0)

    async def raw_orjson(stack: ExitStack) -> tuple[Any, None]:
        client = aredis.Redis(host=target.host, port=target.port, db=target.db)
        closers.append(client.aclose)
        return raw_fn(client, orjson.loads), None

    async def freshcache(stack: ExitStack, **kwargs: Any) -> tuple[Any, Counter]:
        from freshcache import AsyncCache

        cache = AsyncCache(
            target.url, prefix=prefix, version="v1", max_connections=pool, **kwargs
        )
        closers.append(cache.aclose)
        counter = Counter()
        counter.stats = cache.stats
        return cache.cached("user:{user_id}", ttl=TTL)(make_aloader(counter)), counter

    async def cashews_redis(stack: ExitStack) -> tuple[Any, Counter]:
        import cashews

        cache = cashews.Cache()
        cache.setup(target.url, max_connections=pool)
        closers.append(cache.close)
        counter = Counter()
        key = f"{prefix}:cashews:user:{{user_id}}"
        return cache(ttl=TTL, key=key)(make_aloader(counter)), counter

    async def aiocache_redis(stack: ExitStack) -> tuple[Any, Counter]:
        from aiocache import RedisCache, cached

        counter = Counter()
        decorator = cached(
            ttl=TTL,
            cache=RedisCache,
            endpoint=target.host,
            port=target.port,
            db=target.db,
            namespace=f"{prefix}:aiocache",
            pool_max_size=pool,
            connection_pool_class=aredis.BlockingConnectionPool,
            key_builder=lambda f, user_id: f"user:{user_id}",
        )
        fn = decorator(make_aloader(counter))
        closers.append(fn.cache.close)
        return fn, counter

    p2_candidates: dict[str, AFactory] = {
        "raw redis.asyncio GET + json.loads (baseline)": raw_default,
        "freshcache AsyncCache(redis) @cached": freshcache,
        "raw redis.asyncio GET + orjson.loads (diagnostic)": raw_orjson,
        "raw GET + json.loads on freshcache's redis client (diagnostic)": raw_fc_client,
        "cashews redis:// @cache": cashews_redis,
        "aiocache @cached(RedisCache)": aiocache_redis,
    }
    p3_candidates: dict[str, AFactory] = {
        f"raw redis.asyncio GET + json.loads, pool {pool} (baseline)": raw_bounded,
        f"freshcache AsyncCache(redis, max_connections={pool})": freshcache,
        f"freshcache AsyncCache(redis, max_connections={pool}, timeout=1.0)": (
            freshcache_patient
        ),
        "raw redis.asyncio, default unbounded pool (info)": raw_default,
        f"cashews redis://, max_connections={pool}": cashews_redis,
        f"aiocache RedisCache, pool_max_size={pool}": aiocache_redis,
    }

    p2 = Section(
        id="P2-async",
        title="L2 (Redis) hit through the async decorator",
        baseline=(
            "raw redis.asyncio.Redis().get(key) + json.loads of the same JSON payload"
        ),
        estimator=(
            f"median of {cfg.round_trips} timed awaits per library (one at a time), "
            "interleaved in blocks of 50"
        ),
    )
    p3 = Section(
        id="P3",
        title=f"asyncio throughput: {cfg.tasks} tasks doing L2 hits",
        baseline=(
            "raw redis.asyncio GET + json.loads, "
            f"BlockingConnectionPool(max_connections={pool})"
        ),
        estimator=(
            f"{cfg.total:,} hits over {cfg.tasks} tasks "
            "(one shared client per library), "
            f"best of {cfg.rounds} rounds, libraries interleaved"
        ),
        throughput=True,
    )
    try:
        with ExitStack() as stack, quiet_logs():
            # P2: one await at a time.
            built: dict[str, tuple[Any, Counter | None]] = {}
            failed: dict[str, str] = {}
            for name, factory in p2_candidates.items():
                try:
                    fn, counter = await factory(stack)
                    first = await fn(USER_ID)
                    for _ in range(cfg.warmup):
                        await fn(USER_ID)
                    if await fn(USER_ID) != VALUE or first != VALUE:
                        raise AssertionError(f"wrong value: {first!r}")
                    if counter is not None:
                        counter.mark()
                    built[name] = (fn, counter)
                except Exception as exc:
                    failed[name] = reason(exc)
            samples = await asample_calls(
                {name: fn for name, (fn, _) in built.items()},
                USER_ID,
                count=cfg.round_trips,
            )
            _redis_rows(
                p2,
                p2_candidates,
                samples,
                failed,
                {n: c for n, (_, c) in built.items()},
            )
            for row in p2.rows:
                if row.library in built:
                    afn = built[row.library][0]

                    async def hundred(afn: Any = afn) -> None:
                        for _ in range(100):
                            await afn(USER_ID)

                    _add_commands(row, await acommands_per_call(target, 100, hundred))
            p2.notes.append(
                "every client keeps one connection busy here; pool sizes do not matter"
            )

            # P3: fresh clients, so that pool sizes are exactly as configured.
            built3: dict[str, tuple[Any, Counter | None]] = {}
            failed3: dict[str, str] = {}
            for name, factory in p3_candidates.items():
                try:
                    fn, counter = await factory(stack)
                    for key in keys:  # fill every key
                        await fn(key)
                    # warm the pool: open every connection once
                    await throughput(fn, keys, tasks=cfg.tasks, total=cfg.tasks * 4)
                    if counter is not None:
                        counter.mark()
                    built3[name] = (fn, counter)
                except Exception as exc:
                    failed3[name] = reason(exc)
            best: dict[str, float] = dict.fromkeys(built3, 0.0)
            rounds: dict[str, list[float]] = {name: [] for name in built3}
            for _ in range(cfg.rounds):
                for name, (fn, _) in built3.items():
                    try:
                        ops = await throughput(
                            fn, keys, tasks=cfg.tasks, total=cfg.total
                        )
                    except Exception as exc:
                        failed3[name] = reason(exc)
                        continue
                    rounds[name].append(ops)
                    best[name] = max(best[name], ops)
            per_op = {
                name: 1.0 / ops
                for name, ops in best.items()
                if ops > 0 and name not in failed3
            }
            _fill_rows(
                p3,
                p3_candidates,
                per_op,
                failed3,
                {n: c for n, (_, c) in built3.items()},
                target=P3_TARGET,
                at_least=True,
                throughput_rows=True,
                timed_calls=cfg.rounds * cfg.total,
            )
            for row in p3.rows:
                if row.library in rounds:
                    row.extra |= {
                        "rounds_ops_per_s": [round(x) for x in rounds[row.library]]
                    }
                if row.library in built3 and row.library not in failed3:
                    afn = built3[row.library][0]
                    n = cfg.tasks * 10

                    async def burst(afn: Any = afn, n: int = n) -> None:
                        await throughput(afn, keys, tasks=cfg.tasks, total=n)

                    _add_commands(row, await acommands_per_call(target, n, burst))
            p3.notes.append(
                "per op = wall time / operations (not latency); ratio = ops/s over the "
                "baseline's ops/s (higher is better)"
            )
            p3.notes.append(
                f"task i reads key i ({cfg.tasks} distinct warm keys), so that no "
                "library can coalesce concurrent reads of one key into one GET "
                "(cashews does, protected=True by default)"
            )
            p3.notes.append(
                f"pools of equal size: freshcache max_connections={pool}; the "
                f"baseline a BlockingConnectionPool of {pool} (10 s pool wait); "
                "redis-py's default async pool is unbounded (for information)"
            )
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
    return p2, p3


def _add_commands(row: Row, per_call: float) -> None:
    row.extra["redis_commands_per_hit"] = round(per_call, 3)
    text = f"{per_call:.2f} Redis cmds/hit"
    row.note = f"{text}; {row.note}" if row.note else text


def redis_sections(cfg: Config, target: RedisTarget) -> list[Section]:
    sections: list[Section] = []
    try:
        sections.append(p2_sync(cfg, target))
        sections.extend(asyncio.run(_async_redis(cfg, target)))
    finally:
        try:
            cleanup_redis(target)
        except Exception as exc:
            print(
                f"warning: could not clean up Redis keys: {reason(exc)}",
                file=sys.stderr,
            )
        client = _INFO_CLIENTS.pop(target, None)
        if client is not None:
            client.close()
    return sections


# -- entry point -----------------------------------------------------------------


def metadata(cfg: Config, target: RedisTarget) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": cfg.quick,
        "redis_url": target.url,
        "versions": {
            dist: version_of(dist)
            for dist in (
                "freshcache",
                "redis",
                "hiredis",
                "orjson",
                "cachetools",
                "cachebox",
                "theine",
                "cashews",
                "aiocache",
                "dogpile.cache",
            )
        },
    }
    info["git_commit"] = git_commit()
    try:
        import redis

        client = redis.Redis(host=target.host, port=target.port, db=target.db)
        info["redis_server"] = client.info("server").get("redis_version")
        client.close()
    except Exception as exc:
        info["redis_server"] = reason(exc)
    return info


SECTIONS = ("p1", "p1-async", "p2", "p3")


def run(
    *,
    quick: bool,
    json_path: str | None,
    redis_url: str,
    pool_size: int,
    tasks: int,
    total: int | None,
    only: list[str] | None,
    plain: bool,
    check: bool = False,
) -> int:
    cfg = Config(
        quick=quick,
        redis_url=redis_url,
        pool_size=pool_size,
        tasks=tasks,
        total=total if total is not None else (4_000 if quick else 20_000),
    )
    target = RedisTarget.parse(redis_url)
    wanted = set(only or SECTIONS)
    sections: list[Section] = []
    started = time.perf_counter()

    def attempt(label: str, call: Callable[[], Any]) -> None:
        try:
            result = call()
        except Exception as exc:
            traceback.print_exc()
            section = Section(id=label, title="failed", baseline="-", estimator="-")
            section.rows.append(Row("(section)", None, note=reason(exc)))
            sections.append(section)
            return
        sections.extend(result if isinstance(result, list) else [result])

    if "p1" in wanted:
        attempt("P1-sync", lambda: p1_sync(cfg))
    if "p1-async" in wanted:
        attempt("P1-async", lambda: p1_async(cfg))
    if wanted & {"p2", "p3"}:
        attempt("P2/P3", lambda: redis_sections(cfg, target))
        if "p2" not in wanted:
            sections = [s for s in sections if not s.id.startswith("P2")]
        if "p3" not in wanted:
            sections = [s for s in sections if s.id != "P3"]
    elapsed = time.perf_counter() - started

    render(sections, plain=plain)
    info = metadata(cfg, target)
    info["elapsed_s"] = round(elapsed, 1)
    print(
        f"python {info['python']} on {info['platform']}, {info['cpus']} CPUs (shared: "
        f"absolute times are noisy, compare ratios); redis {info.get('redis_server')}; "
        f"{'quick' if quick else 'full'} run in {elapsed:.1f} s"
    )
    if json_path:
        write_json(json_path, info, sections)
    misses = [
        (s.id, r.library)
        for s in sections
        for r in s.rows
        if r.verdict in ("MISSES", "INVALID")
    ]
    if misses:
        print("targets missed: " + "; ".join(f"{sid}: {lib}" for sid, lib in misses))
    return 1 if (check and misses) else 0
