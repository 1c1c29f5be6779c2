"""OpenTelemetry for a cache: its stats as metrics, its work as spans.

Install the extra (``pip install 'freshcache[otel]'``: ``opentelemetry-api``
only; the SDK and exporters are the application's choice), then::

    from freshcache.contrib.otel import OtelTracing, instrument

    cache = Cache(url, tracing=OtelTracing())  # spans
    instrument(cache, name="app")  # metrics, once per cache, at start-up

Metrics: ``instrument`` registers observable (asynchronous) instruments on a
meter (``opentelemetry.metrics.get_meter("freshcache")`` by default) whose
callbacks read ``cache.stats()`` when the application's metric reader
collects: the hit path pays nothing. OpenTelemetry has no observable
histogram, so latency is exported as two counters per operation,
``freshcache.operation.count`` and ``freshcache.operation.time`` (a mean
over any window, summed across processes); for bucketed latency
histograms, build the cache with ``metrics=OtelHistograms()``, which
records each timed operation into a synchronous ``Histogram`` as well as
into ``stats()``: a cost paid on every Redis command, never on an L1 hit.

Spans: ``OtelTracing`` opens a span (kind ``INTERNAL``) around each load,
fill, invalidation and write-behind batch (``freshcache.tracing``), as the
current span, so a loader's own database spans are its children; in
asyncio the span is current for the task that opened it only. An
exception ends its span with status ``ERROR`` and ``error.type`` (the
class); its message is never recorded (a loader's can quote a row).

Without an SDK configured, OpenTelemetry's API is a no-op: the instruments
are never collected and the spans are not recorded. Without
``OtelTracing``, a cache's traced operations cost one call to a shared
empty span.

Attributes are bounded: the cache's ``name`` (``freshcache.cache``), tier,
namespace, outcome, bypass reason, error class, event, eviction cause,
operation. Never a key, a tag or a value. ``db.system.name`` is ``redis``
on what concerns the Redis tier, ``error.type`` carries error classes,
as OpenTelemetry's semantic conventions name them.

Instruments (unit in brackets; ``freshcache.cache`` on each):

* ``freshcache.lookups`` ``{lookup}``: every lookup once, by
  ``freshcache.namespace`` and ``freshcache.outcome`` (``hit``, ``miss``,
  ``bypass``);
* ``freshcache.tier.lookups`` ``{lookup}``: per tier reached
  (``freshcache.tier``: ``l1``, ``redis``), by namespace and outcome;
* ``freshcache.bypasses`` ``{lookup}``: by tier (``cache``: the whole cache),
  namespace and ``freshcache.bypass.reason``;
* ``freshcache.loads`` ``{load}``, ``freshcache.load.errors`` ``{load}``,
  ``freshcache.load.time`` ``s``;
* ``freshcache.evictions`` ``{eviction}``: by tier and
  ``freshcache.eviction.cause``;
* ``freshcache.errors`` ``{error}``: by ``error.type``;
* ``freshcache.events`` ``{event}``: by ``freshcache.event``;
* ``freshcache.operation.count`` ``{operation}`` and
  ``freshcache.operation.time`` ``s``: by ``freshcache.operation``;
* ``freshcache.invalidations.pending`` ``{invalidation}`` (up-down);
* ``freshcache.gauge`` (a gauge): by ``freshcache.gauge`` (write-behind
  backlog, lag, ...);
* with ``OtelHistograms``: ``freshcache.operation.duration`` ``s``, a
  histogram by ``freshcache.operation``, buckets ``BUCKETS``.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import version as _version
from types import TracebackType
from typing import Any, Final, Protocol

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.metrics import (
        CallbackOptions,
        Histogram,
        Meter,
        MeterProvider,
        Observation,
    )
    from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError(
        "freshcache.contrib.otel needs opentelemetry-api: "
        "pip install 'freshcache[otel]'"
    ) from exc

from freshcache import BUCKETS, CacheStats, Lookups, Outcome, StatsRecorder, Tier
from freshcache.tracing import Attribute, AttributeValue, error_type

__all__ = [
    "INSTRUMENTS",
    "OtelExporter",
    "OtelHistograms",
    "OtelTracing",
    "instrument",
    "observations",
]

SCOPE: Final = "freshcache"  # the instrumentation scope's name
_VERSION: Final = _version("freshcache")  # the installed distribution's

CACHE: Final = "freshcache.cache"
NAMESPACE: Final = Attribute.NAMESPACE.value
TIER: Final = Attribute.TIER.value
OUTCOME: Final = "freshcache.outcome"
REASON: Final = "freshcache.bypass.reason"
CAUSE: Final = "freshcache.eviction.cause"
EVENT: Final = "freshcache.event"
OPERATION: Final = "freshcache.operation"
GAUGE: Final = "freshcache.gauge"
ERROR_TYPE: Final = Attribute.ERROR_TYPE.value
DB_SYSTEM: Final = Attribute.DB_SYSTEM_NAME.value

# name -> (kind, unit, description). Kinds: "counter" (ObservableCounter),
# "updown" (ObservableUpDownCounter), "gauge" (ObservableGauge).
INSTRUMENTS: Final[dict[str, tuple[str, str, str]]] = {
    "freshcache.lookups": (
        "counter", "{lookup}",
        "Lookups, each counted once: hit (a tier answered), miss, or bypass.",
    ),
    "freshcache.tier.lookups": (
        "counter", "{lookup}",
        "Lookups that reached a tier (l1, redis), by outcome there.",
    ),
    "freshcache.bypasses": (
        "counter", "{lookup}",
        "Lookups that skipped a tier, or the whole cache (tier=cache), by reason.",
    ),
    "freshcache.loads": ("counter", "{load}", "Loader calls."),
    "freshcache.load.errors": ("counter", "{load}", "Loader calls that raised."),
    "freshcache.load.time": ("counter", "s", "Time spent in loaders."),
    "freshcache.evictions": ("counter", "{eviction}", "L1 evictions, by cause."),
    "freshcache.errors": ("counter", "{error}", "Errors, by class (error.type)."),
    "freshcache.events": ("counter", "{event}", "Other events, by name."),
    "freshcache.operation.count": (
        "counter", "{operation}",
        "Timed operations (Redis commands, loads, ...), by operation.",
    ),
    "freshcache.operation.time": (
        "counter", "s", "Time spent in timed operations, by operation.",
    ),
    "freshcache.invalidations.pending": (
        "updown", "{invalidation}",
        "Invalidations Redis did not take yet, queued for retry.",
    ),
    "freshcache.gauge": (
        "gauge", "1", "Last value of a cache gauge (write-behind backlog, lag, ...).",
    ),
}  # fmt: skip
HISTOGRAM: Final = "freshcache.operation.duration"

Point = tuple[str, dict[str, AttributeValue], float]


class _HasStats(Protocol):
    def stats(self) -> CacheStats: ...


def observations(stats: CacheStats) -> Iterator[Point]:
    """``(instrument, attributes, value)`` of every point of ``stats``
    (without the ``freshcache.cache`` attribute)."""
    for namespace, by_ns in stats.namespaces.items():
        yield from _outcomes(
            "freshcache.lookups", {NAMESPACE: namespace}, by_ns.lookups
        )
        tiers = ((Tier.L1, by_ns.l1), (Tier.REDIS, by_ns.redis))
        for tier, lookups in tiers:
            if lookups.total:
                where = _tier(tier, namespace)
                yield from _outcomes("freshcache.tier.lookups", where, lookups)
        for tier, lookups in ((Tier.CACHE, by_ns.lookups), *tiers):
            for reason, n in lookups.bypasses.items():
                yield (
                    "freshcache.bypasses",
                    {**_tier(tier, namespace), REASON: reason},
                    n,
                )
    yield "freshcache.loads", {}, stats.loads
    yield "freshcache.load.errors", {}, stats.load_errors
    yield "freshcache.load.time", {}, stats.load_seconds
    for evicted, n in stats.evictions.items():
        tier_name, _, cause = evicted.partition(":")
        yield "freshcache.evictions", {TIER: tier_name, CAUSE: cause}, n
    for error, n in stats.errors.items():
        yield "freshcache.errors", {ERROR_TYPE: error}, n
    for event, n in stats.counts.items():
        yield "freshcache.events", {EVENT: event}, n
    for operation, latency in stats.latency.items():
        yield "freshcache.operation.count", {OPERATION: operation}, latency.count
        if math.isfinite(latency.sum):  # watermark_age is inf before a first ping
            yield "freshcache.operation.time", {OPERATION: operation}, latency.sum
    yield "freshcache.invalidations.pending", {}, stats.pending_invalidations
    for gauge, value in stats.gauges.items():
        yield "freshcache.gauge", {GAUGE: gauge}, value


def _tier(tier: Tier, namespace: str) -> dict[str, AttributeValue]:
    if tier is Tier.REDIS:
        return {TIER: tier.value, NAMESPACE: namespace, DB_SYSTEM: "redis"}
    return {TIER: tier.value, NAMESPACE: namespace}


def _outcomes(
    instrument: str, attributes: dict[str, AttributeValue], lookups: Lookups
) -> Iterator[Point]:
    yield instrument, {**attributes, OUTCOME: Outcome.HIT.value}, lookups.hits
    yield instrument, {**attributes, OUTCOME: Outcome.MISS.value}, lookups.misses
    yield instrument, {**attributes, OUTCOME: Outcome.BYPASS.value}, lookups.bypassed


class _Observer:
    """The instruments of one meter, observing every cache instrumented on it
    (OpenTelemetry keeps the first instrument of a name, so each is made once
    per meter)."""

    def __init__(self, meter: Meter) -> None:
        self._caches: dict[str, _HasStats] = {}
        self._lock = threading.Lock()
        for name, (kind, unit, description) in INSTRUMENTS.items():
            make: Callable[..., Any] = {
                "counter": meter.create_observable_counter,
                "updown": meter.create_observable_up_down_counter,
                "gauge": meter.create_observable_gauge,
            }[kind]
            make(name, callbacks=[self._callback(name)], unit=unit,
                 description=description)  # fmt: skip

    def add(self, name: str, cache: _HasStats) -> None:
        with self._lock:
            if name in self._caches and self._caches[name] is not cache:
                raise ValueError(
                    f"a cache named {name!r} is already instrumented on this "
                    "meter: give each cache its own name"
                )
            self._caches[name] = cache

    def remove(self, name: str, cache: _HasStats) -> None:
        with self._lock:
            if self._caches.get(name) is cache:
                del self._caches[name]

    def _callback(
        self, instrument: str
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            found = []
            for name, cache in list(self._caches.items()):
                for metric, attributes, value in observations(cache.stats()):
                    if metric == instrument:
                        attributes[CACHE] = name
                        found.append(Observation(value, attributes))
            return found

        return observe


class OtelExporter:
    """What ``instrument`` returns: ``close()`` stops observing the cache."""

    def __init__(self, observer: _Observer, name: str, cache: _HasStats) -> None:
        self.name = name
        self._observer = observer
        self._cache = cache

    def close(self) -> None:
        self._observer.remove(self.name, self._cache)


_observers: weakref.WeakKeyDictionary[Meter, _Observer] = weakref.WeakKeyDictionary()
_module_lock = threading.Lock()


def _meter(meter: Meter | None, meter_provider: MeterProvider | None) -> Meter:
    if meter is not None:
        if meter_provider is not None:
            raise ValueError("give a meter or a meter_provider, not both")
        return meter
    return otel_metrics.get_meter(SCOPE, _VERSION, meter_provider)


def instrument(
    cache: _HasStats,
    *,
    name: str = "default",
    meter: Meter | None = None,
    meter_provider: MeterProvider | None = None,
) -> OtelExporter:
    """Export ``cache``'s stats as OpenTelemetry metrics, with the attribute
    ``freshcache.cache=name``: observable instruments on ``meter`` (default:
    the ``freshcache`` meter of ``meter_provider``, or of the global
    provider) read ``cache.stats()`` at each collection. Two caches on one
    meter need two names (``ValueError``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, not {name!r}")
    if not callable(getattr(cache, "stats", None)):
        raise TypeError(f"instrument() takes a cache, not {type(cache).__name__}")
    chosen = _meter(meter, meter_provider)
    with _module_lock:
        observer = _observers.get(chosen)
        if observer is None:
            observer = _observers[chosen] = _Observer(chosen)
    observer.add(name, cache)
    return OtelExporter(observer, name, cache)


class OtelHistograms(StatsRecorder):
    """``stats()``'s recorder, which also records every timed operation
    (``stats().latency``: Redis commands, loads, write-behind lag, ...) in
    the histogram ``freshcache.operation.duration`` (seconds, by
    ``freshcache.operation``, buckets ``BUCKETS``). Opt in with
    ``Cache(..., metrics=OtelHistograms(name="app"))``: unlike the
    observable instruments of ``instrument``, it costs a histogram record
    per Redis command (never on an L1 hit)."""

    def __init__(
        self,
        *,
        name: str = "default",
        meter: Meter | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        super().__init__()
        chosen = _meter(meter, meter_provider)
        self._histogram: Histogram = chosen.create_histogram(
            HISTOGRAM,
            unit="s",
            description="Latency of cache operations (Redis commands, loads, ...).",
            explicit_bucket_boundaries_advisory=[
                b for b in BUCKETS if not math.isinf(b)
            ],
        )
        self._name = name
        self._attributes: dict[str, dict[str, AttributeValue]] = {}

    def latency(self, operation: str, seconds: float) -> None:
        super().latency(operation, seconds)
        if not math.isfinite(seconds):  # OpenTelemetry drops it, with a log
            return
        attributes = self._attributes.get(operation)
        if attributes is None:  # one dict per operation, made once
            attributes = {CACHE: self._name, OPERATION: str(operation)}
            self._attributes[operation] = attributes
        self._histogram.record(seconds, attributes)


class OtelTracing:
    """Spans through OpenTelemetry's tracer API: pass it to the cache,
    ``Cache(url, tracing=OtelTracing())``. ``tracer_provider`` defaults to
    the global one; ``name`` (optional) is set on every span as
    ``freshcache.cache``."""

    __slots__ = ("_base", "_tracer")

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        name: str | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(SCOPE, _VERSION, tracer_provider)
        self._base: dict[str, AttributeValue] = {} if name is None else {CACHE: name}

    def span(self, name: str, attributes: Mapping[str, AttributeValue]) -> _OtelSpan:
        if self._base:
            attributes = {**self._base, **attributes}
        return _OtelSpan(
            self._tracer.start_as_current_span(
                str(name),
                kind=SpanKind.INTERNAL,
                attributes=_plain(attributes),
                record_exception=False,  # its message can quote a row
                set_status_on_exception=False,  # its description too
            )
        )


def _plain(attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    """Attributes with plain ``str`` names and values: the library's names
    are ``StrEnum`` members, which exporters need not know."""
    return {
        str(k): (str(v) if isinstance(v, str) else v) for k, v in attributes.items()
    }


class _OtelSpan:
    __slots__ = ("_manager", "_span")

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self._span: trace.Span = trace.INVALID_SPAN

    def __enter__(self) -> _OtelSpan:
        self._span = self._manager.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.record_error(exc)
        self._manager.__exit__(exc_type, exc, tb)

    def set_attribute(self, name: str, value: AttributeValue) -> None:
        self._span.set_attribute(
            str(name), str(value) if isinstance(value, str) else value
        )

    def record_error(self, error: BaseException) -> None:
        self._span.set_attribute(ERROR_TYPE, error_type(type(error)))
        self._span.set_status(Status(StatusCode.ERROR))
