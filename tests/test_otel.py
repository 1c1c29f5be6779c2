"""freshcache.contrib.otel: metric points and spans, read back through the
OpenTelemetry SDK's in-memory reader and exporter, for a scripted workload
on a real Redis (a hit, a miss with a load, an invalidation, a write-behind
batch applied by a real worker to SQLite), sync and async; and the default
(no tracing) that creates no span and imports no OpenTelemetry."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from freshcache import (
    MISS,
    AsyncCache,
    Cache,
    CacheStats,
    CallableSink,
    NullTracing,
    SpanName,
)
from freshcache.contrib.otel import (
    INSTRUMENTS,
    OtelHistograms,
    OtelTracing,
    instrument,
    observations,
)
from freshcache.sinks.sqlite import SQLiteSink
from freshcache.testing import FakeClock

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Ada-Lovelace-7f3a"  # in a cached value: never in an attribute
Points = dict[tuple[str, tuple[tuple[str, Any], ...]], float]


class Telemetry:
    """An SDK meter provider with an in-memory reader, and a tracer provider
    with an in-memory exporter (neither global)."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def points(self) -> Points:
        """``{(instrument, sorted attributes): value}`` of every point."""
        found: Points = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "freshcache"
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        key = (metric.name, tuple(sorted(point.attributes.items())))
                        found[key] = point.value  # type: ignore[union-attr]
        return found

    def units(self) -> dict[str, str]:
        data = self.reader.get_metrics_data()
        return {
            metric.name: metric.unit
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def close(self) -> None:
        self.meters.shutdown()
        self.tracers.shutdown()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "version INTEGER NOT NULL)"
        )
    return path


def point(points: Points, instrument: str, **attributes: Any) -> float:
    key = (instrument, tuple(sorted({"freshcache.cache": "app", **attributes}.items())))
    assert key in points, f"no point {key}"
    return points[key]


def check_points(points: Points, stats: CacheStats) -> None:
    """The workload's points, each with its value, and every point of
    ``stats()`` exported with its value (and nothing else)."""
    user = {"freshcache.namespace": "user"}
    redis = {**user, "freshcache.tier": "redis", "db.system.name": "redis"}
    assert (
        point(points, "freshcache.lookups", **user, **{"freshcache.outcome": "hit"})
        == 1
    )
    assert (
        point(points, "freshcache.lookups", **user, **{"freshcache.outcome": "miss"})
        == 1
    )
    assert (
        point(points, "freshcache.lookups", **user, **{"freshcache.outcome": "bypass"})
        == 0
    )
    assert (
        point(
            points, "freshcache.tier.lookups", **redis, **{"freshcache.outcome": "hit"}
        )
        == 1
    )
    assert (
        point(
            points, "freshcache.tier.lookups", **redis, **{"freshcache.outcome": "miss"}
        )
        == 1
    )
    assert point(points, "freshcache.loads") == 1
    assert point(points, "freshcache.load.errors") == 0
    assert point(points, "freshcache.load.time") == stats.load_seconds > 0
    assert (
        point(
            points, "freshcache.events", **{"freshcache.event": "writebehind:enqueued"}
        )
        == 1
    )
    assert (
        point(
            points, "freshcache.events", **{"freshcache.event": "writebehind:applied"}
        )
        == 1
    )
    assert point(points, "freshcache.invalidations.pending") == 0
    assert (
        point(points, "freshcache.operation.count", **{"freshcache.operation": "load"})
        == 1
    )
    assert (
        point(points, "freshcache.gauge", **{"freshcache.gauge": "writebehind_applied"})
        == 1
    )
    assert (
        point(points, "freshcache.gauge", **{"freshcache.gauge": "writebehind_backlog"})
        == 0
    )
    expected = {
        (name, tuple(sorted({**attributes, "freshcache.cache": "app"}.items()))): value
        for name, attributes, value in observations(stats)
    }
    assert _foreground(expected) == _foreground(points)
    assert {name for name, _ in points} <= set(INSTRUMENTS)


# Timed by the cache's background tasks (the bus's pings, lease renewals),
# which may run between the exporter's reading and ``stats()``.
_BACKGROUND = {"watermark_age", "ping", "renew"}


def _foreground(points: Points) -> Points:
    return {
        key: value
        for key, value in points.items()
        if not any(
            name == "freshcache.operation" and op in _BACKGROUND for name, op in key[1]
        )
    }


def check_spans(spans: list[ReadableSpan]) -> None:
    """One span per traced step, in order, each with exactly its attributes."""
    assert [(s.name, dict(s.attributes or {})) for s in spans] == [
        (
            "freshcache.load",
            {
                "freshcache.cache": "app",
                "freshcache.namespace": "user",
                "freshcache.load.reason": "miss",
            },
        ),
        (
            "freshcache.fill",
            {
                "freshcache.cache": "app",
                "freshcache.namespace": "user",
                "freshcache.tier": "redis",
                "db.system.name": "redis",
                "freshcache.fill.outcome": "stored",
            },
        ),
        (
            "freshcache.invalidate",
            {
                "freshcache.cache": "app",
                "db.system.name": "redis",
                "freshcache.invalidation.keys": 1,
                "freshcache.namespace": "user",
                "freshcache.invalidation.outcome": "landed",
            },
        ),
        (
            "freshcache.writebehind.batch",
            {
                "freshcache.cache": "app",
                "freshcache.writebehind.queue": "q",
                "messaging.batch.message_count": 1,
                "freshcache.writebehind.applied": 1,
                "freshcache.writebehind.outcome": "applied",
            },
        ),
    ]
    for span in spans:
        assert span.kind is SpanKind.INTERNAL
        assert span.status.status_code is StatusCode.UNSET
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "freshcache"


def check_no_key_or_value(points: Points, spans: list[ReadableSpan]) -> None:
    """No attribute of any point or span holds a key, a tag or a value."""
    values = [str(v) for _, attributes in points for _, v in attributes]
    values += [str(v) for s in spans for v in (s.attributes or {}).values()]
    assert values
    for text in values:
        assert SECRET not in text
        assert "user:" not in text, text
        assert "team:" not in text, text


def test_sync_workload_points_and_spans(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry,
    sqlite_path: Path,
) -> None:  # fmt: skip
    tracing = OtelTracing(tracer_provider=telemetry.tracers, name="app")
    with Cache(redis_url, prefix=key_prefix, timeout=1.0, tracing=tracing) as cache:
        exporter = instrument(cache, name="app", meter_provider=telemetry.meters)
        cache.set("user:1", {"name": SECRET}, tags=["team:7"])
        assert telemetry.spans() == []  # a set is not traced
        assert cache.get("user:1") == {"name": SECRET}  # a hit
        assert telemetry.spans() == []  # neither is a hit
        assert cache.get_or_load("user:2", lambda: {"name": SECRET}) == {
            "name": SECRET
        }  # a miss, a load, a fill
        assert cache.invalidate("user:1")
        wb = cache.write_behind(name="q")
        try:
            wb.put("user:3", {"name": SECRET})
            worker = wb.worker(SQLiteSink(sqlite_path, table="t"), block=0)
            assert worker.run(until_idle=True).applied == 1  # one batch
            worker.close()
            with sqlite3.connect(sqlite_path) as conn:
                assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
            points, stats, spans = telemetry.points(), cache.stats(), telemetry.spans()
        finally:
            wb.close()
        check_points(points, stats)
        check_spans(spans)
        check_no_key_or_value(points, spans)
        assert telemetry.units()["freshcache.lookups"] == "{lookup}"
        assert telemetry.units()["freshcache.load.time"] == "s"
        exporter.close()  # stops observing this cache
        assert telemetry.points() == {}


async def test_async_workload_points_and_spans(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry,
    sqlite_path: Path,
) -> None:  # fmt: skip
    tracing = OtelTracing(tracer_provider=telemetry.tracers, name="app")
    async with AsyncCache(
        redis_url, prefix=key_prefix, timeout=1.0, tracing=tracing
    ) as cache:
        instrument(cache, name="app", meter_provider=telemetry.meters)
        await cache.set("user:1", {"name": SECRET})
        assert await cache.get("user:1") == {"name": SECRET}

        async def load() -> dict[str, str]:
            await asyncio.sleep(0)
            return {"name": SECRET}

        assert await cache.get_or_load("user:2", load) == {"name": SECRET}
        assert await cache.invalidate("user:1")
        wb = cache.write_behind(name="q")
        try:
            await wb.put("user:3", {"name": SECRET})
            worker = wb.worker(SQLiteSink(sqlite_path, table="t"), block=0)
            assert (await worker.run(until_idle=True)).applied == 1
            await worker.aclose()
            points, stats, spans = telemetry.points(), cache.stats(), telemetry.spans()
        finally:
            await wb.aclose()
        check_points(points, stats)
        check_spans(spans)
        check_no_key_or_value(points, spans)


async def test_async_spans_follow_their_task_across_awaits(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry
) -> None:
    """Two tasks load at once, each inside a request span of its own, with
    loaders that await (so the tasks interleave): each load span is a child
    of its own task's request span, and a span the loader opens is a child
    of the load span."""
    tracer = telemetry.tracers.get_tracer("app")
    tracing = OtelTracing(tracer_provider=telemetry.tracers)
    both = asyncio.Barrier(2)
    async with AsyncCache(
        redis_url, prefix=key_prefix, timeout=1.0, tracing=tracing
    ) as cache:

        async def request(n: int) -> None:
            with tracer.start_as_current_span(f"request {n}"):

                async def loader() -> int:
                    await both.wait()  # both loads are under way here
                    with tracer.start_as_current_span(f"query {n}"):
                        await asyncio.sleep(0)
                    return n

                assert await cache.get_or_load(f"item:{n}", loader) == n

        await asyncio.gather(request(1), request(2))
    spans = {s.name: s for s in telemetry.spans()}
    loads = [s for s in telemetry.spans() if s.name == "freshcache.load"]
    fills = [s for s in telemetry.spans() if s.name == "freshcache.fill"]
    assert len(loads) == len(fills) == 2
    for n in (1, 2):
        parent = spans[f"request {n}"].context
        query = spans[f"query {n}"]
        assert parent is not None
        assert query.parent is not None
        (load,) = [s for s in loads if s.context == query.parent]
        assert load.parent is not None
        assert load.parent.span_id == parent.span_id
        (fill,) = [s for s in fills if s.parent and s.parent.span_id == parent.span_id]
        assert fill.start_time is not None
        assert load.end_time is not None
        assert fill.start_time >= load.end_time  # siblings: load, then fill
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left current


def test_a_failed_load_records_its_class_never_its_message(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry
) -> None:
    tracing = OtelTracing(tracer_provider=telemetry.tracers)

    def loader() -> None:
        raise LookupError(f"row {SECRET} not found")

    with (
        Cache(redis_url, prefix=key_prefix, timeout=1.0, tracing=tracing) as cache,
        pytest.raises(LookupError),
    ):
        cache.get_or_load("user:9", loader)
    (span,) = telemetry.spans()  # no fill after a failed load
    assert span.name == SpanName.LOAD
    assert span.status.status_code is StatusCode.ERROR
    assert not span.status.description  # it would quote the message
    assert span.events == ()  # no exception event: it carries the message
    assert dict(span.attributes or {}) == {
        "freshcache.namespace": "user",
        "freshcache.load.reason": "miss",
        "error.type": "LookupError",
    }


def test_fill_outcomes_and_tag_and_namespace_invalidations(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry
) -> None:
    """An unserializable value is not stored (``uncacheable``); the embedded
    cache fills its in-process tier (no ``db.system.name``);
    ``invalidate_tags`` and ``bump`` have spans of their own."""
    tracing = OtelTracing(tracer_provider=telemetry.tracers)
    with Cache(redis_url, prefix=key_prefix, timeout=1.0, tracing=tracing) as cache:
        cache.get_or_load("user:1", object)  # no codec takes an object()
        assert cache.invalidate_tags("team:7", "team:8")
        assert cache.bump("user") >= 1
    with Cache(tracing=tracing) as embedded:
        embedded.get_or_load("user:1", lambda: 1)
    named = [(s.name, dict(s.attributes or {})) for s in telemetry.spans()]
    assert named[1:] == [
        (
            "freshcache.fill",
            {
                "freshcache.namespace": "user",
                "freshcache.tier": "redis",
                "db.system.name": "redis",
                "freshcache.fill.outcome": "uncacheable",
            },
        ),
        (
            "freshcache.invalidate_tags",
            {
                "db.system.name": "redis",
                "freshcache.invalidation.tags": 2,
                "freshcache.invalidation.outcome": "landed",
            },
        ),
        (
            "freshcache.bump",
            {
                "db.system.name": "redis",
                "freshcache.namespace": "user",
                "freshcache.invalidation.outcome": "landed",
            },
        ),
        (
            "freshcache.load",
            {"freshcache.namespace": "user", "freshcache.load.reason": "miss"},
        ),
        (
            "freshcache.fill",
            {
                "freshcache.namespace": "user",
                "freshcache.tier": "l1",
                "freshcache.fill.outcome": "stored",
            },
        ),
    ]


def test_histograms_opt_in(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry
) -> None:
    """``OtelHistograms`` records each timed operation in a histogram with
    the same count as ``stats().latency``: here three Redis GETs."""
    metrics = OtelHistograms(name="app", meter_provider=telemetry.meters)
    with Cache(redis_url, prefix=key_prefix, timeout=1.0, metrics=metrics) as cache:
        cache.set("user:1", 1)
        for _ in range(3):
            assert cache.get("user:1") == 1
        stats = cache.stats()
    data = telemetry.reader.get_metrics_data()
    (metric,) = [
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "freshcache.operation.duration"
    ]
    assert metric.unit == "s"
    counts = {
        p.attributes["freshcache.operation"]: p.count  # type: ignore[index,union-attr]
        for p in metric.data.data_points
    }
    assert counts["get"] == stats.latency["get"].count == 3
    for operation, latency in stats.latency.items():
        if operation != "watermark_age":  # inf before the first ping: dropped
            assert counts[operation] == latency.count, operation
    bounds = metric.data.data_points[0].explicit_bounds  # type: ignore[union-attr]
    assert list(bounds)[:3] == [0.000025, 0.00005, 0.0001]


def test_instrument_refuses_bad_input(telemetry: Telemetry) -> None:
    with Cache() as one, Cache() as two:
        with pytest.raises(ValueError):
            instrument(one, name="", meter_provider=telemetry.meters)
        with pytest.raises(TypeError):
            instrument(object(), meter_provider=telemetry.meters)  # type: ignore[arg-type]
        meter = telemetry.meters.get_meter("mine")
        with pytest.raises(ValueError):
            instrument(one, meter=meter, meter_provider=telemetry.meters)
        instrument(one, name="a", meter=meter)
        instrument(one, name="a", meter=meter)  # the same cache again: fine
        with pytest.raises(ValueError, match="already instrumented"):
            instrument(two, name="a", meter=meter)
        instrument(two, name="b", meter=meter)
        one.get_or_load("x:1", lambda: 1)
        data = telemetry.reader.get_metrics_data()
        loads = {
            p.attributes["freshcache.cache"]: p.value  # type: ignore[union-attr]
            for r in data.resource_metrics
            for s in r.scope_metrics
            for m in s.metrics
            if m.name == "freshcache.loads"
            for p in m.data.data_points
        }
        assert loads == {"a": 1, "b": 0}


def test_null_tracing_is_one_shared_span() -> None:
    tracing = NullTracing()
    first = tracing.span(SpanName.LOAD, {"freshcache.namespace": "user"})
    with first as span:
        span.set_attribute("freshcache.fill.outcome", "stored")
        span.record_error(ValueError("x"))
    assert tracing.span(SpanName.FILL, {}) is first
    with pytest.raises(KeyError), tracing.span(SpanName.LOAD, {}):
        raise KeyError("the empty span lets exceptions through")


def test_the_default_creates_no_span_and_imports_no_opentelemetry(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """``import freshcache`` imports no OpenTelemetry; a cache without
    ``tracing`` creates no span even with an SDK installed as the global
    tracer provider (run in a process of its own: the global provider is set
    once per process)."""
    code = f"""
import json, sys
import freshcache
from freshcache import Cache
imported = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
with Cache({redis_url!r}, prefix={key_prefix!r}) as cache:
    cache.get_or_load("user:1", lambda: 1)
    cache.get("user:1")
    cache.invalidate("user:1")
    cache.invalidate_tags("team:1")
    cache.bump("user")
print(json.dumps({{"imported": imported, "spans": len(exporter.get_finished_spans()),
                  "loads": cache.stats().loads}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "imported": [],
        "spans": 0,
        "loads": 1,
    }


async def test_a_background_refresh_is_a_refresh_load_under_its_request(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry,
    fake_clock: FakeClock,
) -> None:  # fmt: skip
    """A stale read returns at once and refreshes in a task of its own: its
    load span says ``refresh`` and is the child of the request that served
    the stale value."""
    tracer = telemetry.tracers.get_tracer("app")
    tracing = OtelTracing(tracer_provider=telemetry.tracers)
    loaded: list[int] = []

    async def loader() -> int:
        loaded.append(1)
        return len(loaded)

    async with AsyncCache(
        redis_url, prefix=key_prefix, tracing=tracing, clock=fake_clock,
        ttl=10, stale_ttl=60,
    ) as cache:  # fmt: skip
        assert await cache.get_or_load("user:1", loader) == 1
        fake_clock.advance(11)  # stale, inside the stale window
        with tracer.start_as_current_span("request") as request:
            assert await cache.get_or_load("user:1", loader) == 1  # at once
        for _ in range(500):  # the refresh runs in the background
            if len(telemetry.spans()) >= 5:
                break
            await asyncio.sleep(0.01)
    spans = telemetry.spans()
    refresh = [s for s in spans if s.name == "freshcache.load"][1]
    assert dict(refresh.attributes or {}) == {
        "freshcache.namespace": "user",
        "freshcache.load.reason": "refresh",
    }
    assert refresh.parent is not None
    assert refresh.parent.span_id == request.get_span_context().span_id
    fills = [s for s in spans if s.name == "freshcache.fill"]
    assert [(s.attributes or {})["freshcache.fill.outcome"] for s in fills] == [
        "stored",
        "stored",
    ]


def test_a_fill_after_an_invalidation_is_skipped(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry
) -> None:
    """An invalidation that lands while the loader runs revokes the lease:
    the fill span says ``skipped`` (and the invalidation's span is a child
    of the load's, where it ran)."""
    tracing = OtelTracing(tracer_provider=telemetry.tracers)
    with Cache(redis_url, prefix=key_prefix, timeout=1.0, tracing=tracing) as cache:

        def loader() -> str:
            cache.invalidate("user:5")  # a write committed meanwhile
            return "old"

        assert cache.get_or_load("user:5", loader) == "old"
        assert cache.get("user:5") is MISS  # not stored
    invalidate, load, fill = telemetry.spans()
    assert invalidate.name == "freshcache.invalidate"
    assert invalidate.parent is not None
    assert invalidate.parent.span_id == load.context.span_id
    assert (fill.attributes or {})["freshcache.fill.outcome"] == "skipped"


def test_a_failed_batch_is_retried_with_its_error_class(
    redis_url: str, key_prefix: str, redis_cleanup: None, telemetry: Telemetry
) -> None:
    """The sink fails once (the database restarting), then applies: two
    batch spans, ``retry`` with ``error.type`` and status ``ERROR``, then
    ``applied``; never the sink's message."""
    failures = [ConnectionError(f"row {SECRET}: database restarting")]
    applied: list[int] = []

    def apply(writes: Any) -> None:
        if failures:
            raise failures.pop()
        applied.append(len(writes))

    tracing = OtelTracing(tracer_provider=telemetry.tracers)
    with Cache(redis_url, prefix=key_prefix, timeout=1.0, tracing=tracing) as cache:
        wb = cache.write_behind(name="q")
        try:
            wb.put("user:1", {"name": SECRET})
            worker = wb.worker(CallableSink(apply), block=0, claim_idle=0.01)
            for _ in range(200):  # a retry after claim_idle: 2 or 3 rounds
                worker.run_once()
                if applied:
                    break
            worker.close()
        finally:
            wb.close()
    batches = [s for s in telemetry.spans() if s.name == SpanName.WRITEBEHIND_BATCH]
    assert [dict(s.attributes or {}) for s in batches] == [
        {
            "freshcache.writebehind.queue": "q",
            "messaging.batch.message_count": 1,
            "freshcache.writebehind.applied": 1,
            "error.type": "ConnectionError",
            "freshcache.writebehind.outcome": "retry",
        },
        {
            "freshcache.writebehind.queue": "q",
            "messaging.batch.message_count": 1,
            "freshcache.writebehind.applied": 1,
            "freshcache.writebehind.outcome": "applied",
        },
    ]
    assert batches[0].status.status_code is StatusCode.ERROR
    assert not batches[0].status.description
    assert batches[1].status.status_code is StatusCode.UNSET
