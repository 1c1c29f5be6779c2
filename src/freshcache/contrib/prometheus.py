"""Prometheus metrics for a cache: every counter and histogram of ``stats()``.

Install the extra (``pip install 'freshcache[prometheus]'``), then::

    from freshcache.contrib.prometheus import instrument, scrape_registry

    instrument(cache, name="app")  # once per cache, at start-up
    app.mount("/metrics", prometheus_client.make_asgi_app(scrape_registry()))

One process: ``instrument`` registers a collector that reads
``cache.stats()`` at each scrape, so the hit path pays nothing.

Several worker processes (gunicorn, uvicorn ``--workers``): set
``PROMETHEUS_MULTIPROC_DIR`` before anything imports ``prometheus_client``,
as its multiprocess mode asks. Each worker then copies its counts into
prometheus-client's own counters, histograms and gauges (files in that
directory) every ``interval`` seconds and when it exits; ``/metrics``,
served by any worker, sums the files of every worker
(``scrape_registry()`` gives ``MultiProcessCollector``'s registry). Call
``prometheus_client.multiprocess.mark_process_dead(pid)`` from gunicorn's
``child_exit`` hook as prometheus-client asks, for the live gauges.

Labels are bounded: the cache's ``name``, tier, namespace, outcome, bypass
reason, error class, event, eviction cause, operation. Never a key or a value.

Metrics (``cache`` label on each):

* ``freshcache_lookups_total{namespace, outcome}``: every lookup once,
  ``outcome`` ``hit``, ``miss`` or ``bypass``;
* ``freshcache_tier_lookups_total{tier, namespace, outcome}``: per tier
  reached (``l1``, ``redis``);
* ``freshcache_bypasses_total{tier, namespace, reason}``: bypasses by reason,
  ``tier`` ``cache`` for a lookup that skipped the whole cache;
* ``freshcache_loads_total``, ``freshcache_load_errors_total``;
* ``freshcache_evictions_total{tier, cause}``;
* ``freshcache_errors_total{error}``, ``freshcache_events_total{event}``;
* ``freshcache_latency_seconds{operation}``: histogram, buckets ``BUCKETS``;
* ``freshcache_pending_invalidations``, ``freshcache_gauge{gauge}``.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

try:
    from prometheus_client import (
        REGISTRY,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
    )
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.multiprocess import MultiProcessCollector
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError(
        "freshcache.contrib.prometheus needs prometheus-client: "
        "pip install 'freshcache[prometheus]'"
    ) from exc

from freshcache import BUCKETS, CacheStats, Lookups, Outcome, Tier

__all__ = ["PrometheusExporter", "instrument", "multiprocess", "scrape_registry"]

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class _HasStats(Protocol):
    def stats(self) -> CacheStats: ...


# name -> (help, labels after "cache"); Prometheus adds "_total" to counters.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "freshcache_lookups": (
        "Lookups, each counted once: hit (a tier answered), miss, or bypass.",
        ("namespace", "outcome"),
    ),
    "freshcache_tier_lookups": (
        "Lookups that reached a tier (l1, redis), by outcome there.",
        ("tier", "namespace", "outcome"),
    ),
    "freshcache_bypasses": (
        "Lookups that skipped a tier, or the whole cache (tier=cache), by reason.",
        ("tier", "namespace", "reason"),
    ),
    "freshcache_loads": ("Loader calls.", ()),
    "freshcache_load_errors": ("Loader calls that raised.", ()),
    "freshcache_evictions": ("L1 evictions, by cause.", ("tier", "cause")),
    "freshcache_errors": ("Errors, by class.", ("error",)),
    "freshcache_events": ("Other events, by name.", ("event",)),
}
HISTOGRAM = "freshcache_latency_seconds"
HISTOGRAM_HELP = "Latency of cache operations (Redis commands, loads, ...), seconds."
PENDING = "freshcache_pending_invalidations"
PENDING_HELP = "Invalidations Redis did not take yet, queued for retry."
GAUGE = "freshcache_gauge"
GAUGE_HELP = "Last value of a cache gauge (write-behind backlog, lag, ...)."

Sample = tuple[str, tuple[str, ...], float]


def counter_samples(stats: CacheStats) -> Iterator[Sample]:
    """``(metric, label values after "cache", value)`` of every counter."""
    for namespace, by_ns in stats.namespaces.items():
        yield from _outcomes("freshcache_lookups", (namespace,), by_ns.lookups)
        tiers = ((Tier.L1, by_ns.l1), (Tier.REDIS, by_ns.redis))
        for tier, lookups in tiers:
            if lookups.total:
                labels = (tier.value, namespace)
                yield from _outcomes("freshcache_tier_lookups", labels, lookups)
        for tier, lookups in ((Tier.CACHE, by_ns.lookups), *tiers):
            for reason, n in lookups.bypasses.items():
                yield "freshcache_bypasses", (tier.value, namespace, reason), n
    yield "freshcache_loads", (), stats.loads
    yield "freshcache_load_errors", (), stats.load_errors
    for name, n in stats.evictions.items():
        where, _, cause = name.partition(":")
        yield "freshcache_evictions", (where, cause), n
    for error, n in stats.errors.items():
        yield "freshcache_errors", (error,), n
    for event, n in stats.counts.items():
        yield "freshcache_events", (event,), n


def _outcomes(
    metric: str, labels: tuple[str, ...], lookups: Lookups
) -> Iterator[Sample]:
    yield metric, (*labels, Outcome.HIT.value), lookups.hits
    yield metric, (*labels, Outcome.MISS.value), lookups.misses
    yield metric, (*labels, Outcome.BYPASS.value), lookups.bypassed


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


class StatsCollector:
    """A prometheus-client collector: each scrape reads ``stats()`` of each
    cache (one process)."""

    def __init__(self) -> None:
        self._caches: dict[str, _HasStats] = {}

    def add(self, name: str, cache: _HasStats) -> None:
        self._caches[name] = cache

    def remove(self, name: str) -> None:
        self._caches.pop(name, None)

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        for metric, (doc, labels) in COUNTERS.items():
            yield CounterMetricFamily(metric, doc, labels=("cache", *labels))

    def collect(self) -> Iterable[Metric]:
        counters = {
            metric: CounterMetricFamily(metric, doc, labels=("cache", *labels))
            for metric, (doc, labels) in COUNTERS.items()
        }
        histogram = HistogramMetricFamily(
            HISTOGRAM, HISTOGRAM_HELP, labels=("cache", "operation")
        )
        pending = GaugeMetricFamily(PENDING, PENDING_HELP, labels=("cache",))
        gauge = GaugeMetricFamily(GAUGE, GAUGE_HELP, labels=("cache", "gauge"))
        for name, cache in list(self._caches.items()):
            stats = cache.stats()
            for metric, labels, value in counter_samples(stats):
                counters[metric].add_metric((name, *labels), value)
            for operation, latency in stats.latency.items():
                cumulative, buckets = 0, []
                for bound, n in latency.buckets:
                    cumulative += n
                    buckets.append((_bound(bound), cumulative))
                histogram.add_metric((name, operation), buckets, latency.sum)
            pending.add_metric((name,), stats.pending_invalidations)
            for gauge_name, value in stats.gauges.items():
                gauge.add_metric((name, gauge_name), value)
        yield from counters.values()
        yield histogram
        yield pending
        yield gauge


class _Mirror:
    """Multi-process mode: copies what ``stats()`` gained since the last
    copy into prometheus-client's metrics, which write them to this
    process's files in ``PROMETHEUS_MULTIPROC_DIR``."""

    def __init__(self) -> None:
        self.counters = {
            metric: Counter(metric, doc, ("cache", *labels), registry=None)
            for metric, (doc, labels) in COUNTERS.items()
        }
        self.histogram = Histogram(
            HISTOGRAM, HISTOGRAM_HELP, ("cache", "operation"),
            buckets=BUCKETS, registry=None,
        )  # fmt: skip
        self.pending = Gauge(
            PENDING, PENDING_HELP, ("cache",), registry=None,
            multiprocess_mode="livesum",  # each process's own queue
        )  # fmt: skip
        self.gauge = Gauge(
            GAUGE, GAUGE_HELP, ("cache", "gauge"), registry=None,
            multiprocess_mode="livemax",  # write-behind's: one queue, seen by all
        )  # fmt: skip


class PrometheusExporter:
    """What ``instrument`` returns: ``flush()`` copies now (multi-process
    mode; a no-op otherwise), ``close()`` stops exporting this cache."""

    def __init__(
        self,
        cache: _HasStats,
        *,
        name: str = "default",
        registry: CollectorRegistry | None = None,
        interval: float = 1.0,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.name = name
        self.multiprocess = multiprocess()
        self._cache = cache
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, tuple[str, ...]], float] = {}
        self._last_latency: dict[str, tuple[tuple[int, ...], float]] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if self.multiprocess:
            self._start()
            os.register_at_fork(after_in_child=_after_fork_in_child(self))
            atexit.register(self.flush)
        else:
            collector = _collector(registry or REGISTRY)
            collector.add(name, cache)
            self._collector: StatsCollector | None = collector
            return
        self._collector = None

    # -- multi-process mode ------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="freshcache-prometheus", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                self.flush()
            except Exception:  # pragma: no cover - never stop exporting
                continue

    def _forked(self) -> None:
        """In a forked child: its stats start at zero, its thread is gone."""
        self._lock = threading.Lock()
        self._last.clear()
        self._last_latency.clear()
        if not self._closed.is_set():
            self._start()

    def flush(self) -> None:
        """Copy what this process counted since the last copy into the
        multi-process files (no-op in one-process mode)."""
        if not self.multiprocess:
            return
        mirror = _mirror()
        with self._lock:
            stats = self._cache.stats()
            name = self.name
            last = self._last
            for metric, labels, value in counter_samples(stats):
                key = (metric, labels)
                delta = value - last.get(key, 0)
                if delta > 0:
                    mirror.counters[metric].labels(name, *labels).inc(delta)
                last[key] = value
            for operation, latency in stats.latency.items():
                counts, total = self._last_latency.get(
                    operation, ((0,) * len(latency.counts), 0.0)
                )
                if latency.count > sum(counts):
                    _add_to_histogram(
                        mirror.histogram.labels(name, operation),
                        [n - m for n, m in zip(latency.counts, counts, strict=True)],
                        latency.sum - total,
                    )
                self._last_latency[operation] = (latency.counts, latency.sum)
            mirror.pending.labels(name).set(stats.pending_invalidations)
            for gauge_name, value in stats.gauges.items():
                mirror.gauge.labels(name, gauge_name).set(value)

    def close(self) -> None:
        """Stop exporting this cache: a last copy, then no more."""
        if self._collector is not None:
            self._collector.remove(self.name)
            return
        self.flush()
        self._closed.set()


def instrument(
    cache: _HasStats,
    *,
    name: str = "default",
    registry: CollectorRegistry | None = None,
    interval: float = 1.0,
) -> PrometheusExporter:
    """Export ``cache``'s stats to Prometheus, labelled ``cache=name``.

    One process: a collector in ``registry`` (default: prometheus-client's
    ``REGISTRY``) reads ``cache.stats()`` at each scrape. With
    ``PROMETHEUS_MULTIPROC_DIR`` set: this process's counts are copied to
    the multi-process files every ``interval`` seconds and at exit.
    """
    return PrometheusExporter(cache, name=name, registry=registry, interval=interval)


def multiprocess() -> bool:
    """prometheus-client's multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(os.environ.get(MULTIPROC_VARIABLE))


def scrape_registry() -> CollectorRegistry:
    """The registry to serve on ``/metrics``: prometheus-client's
    ``REGISTRY`` in one process; in multiprocess mode a new one holding a
    ``MultiProcessCollector`` (the sum over every worker's files)."""
    if not multiprocess():
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, StatsCollector] = (
    weakref.WeakKeyDictionary()
)
_mirrors: list[_Mirror] = []
_module_lock = threading.Lock()


def _collector(registry: CollectorRegistry) -> StatsCollector:
    """One collector per registry, for every cache exported to it."""
    with _module_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = StatsCollector()
            registry.register(collector)
        return collector


def _mirror() -> _Mirror:
    """The multi-process metrics, made once per process."""
    with _module_lock:
        if not _mirrors:
            _mirrors.append(_Mirror())
        return _mirrors[0]


def _add_to_histogram(child: Any, counts: list[int], seconds: float) -> None:
    """Add bucket counts to a histogram child. prometheus-client observes one
    value at a time; its child keeps one value per bucket (not cumulative)
    and one for the sum, which is what it writes to the multi-process files."""
    parts = vars(child)
    buckets, total = parts["_buckets"], parts["_sum"]
    for i, n in enumerate(counts):
        if n > 0:
            buckets[i].inc(n)
    total.inc(seconds)


def _after_fork_in_child(exporter: PrometheusExporter) -> Any:
    ref = weakref.ref(exporter)

    def forked() -> None:
        alive = ref()
        if alive is not None:
            alive._forked()  # noqa: SLF001 - its own module

    return forked
