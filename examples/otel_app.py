"""OpenTelemetry: a cache's metrics and spans.

    python examples/otel_app.py                          # in-process cache
    python examples/otel_app.py redis://127.0.0.1:6379/0  # over Redis

Needs ``pip install 'freshcache[otel]' opentelemetry-sdk``. The SDK's
in-memory reader and exporter stand in for an application's real ones
(an OTLP exporter, a Prometheus reader): replace them, and nothing else
changes. Prints the spans the cache opened and its metric points.
"""

from __future__ import annotations

import sys

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from freshcache import Cache
from freshcache.contrib.otel import OtelTracing, instrument


def main(url: str | None) -> None:
    # The application's telemetry set-up (usually set as the global
    # providers: then OtelTracing() and instrument(cache) need no argument).
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    tracer = tracers.get_tracer("app")

    tracing = OtelTracing(tracer_provider=tracers, name="app")
    with Cache(url, prefix="otel-example", tracing=tracing) as cache:
        instrument(cache, name="app", meter_provider=meters)
        cache.clear()

        @cache.cached("user:{user_id}")
        def get_user(user_id: int) -> dict[str, object]:
            with tracer.start_as_current_span("SELECT users"):  # the loader's query
                return {"id": user_id, "name": "Ada"}

        with tracer.start_as_current_span("GET /users/1"):
            get_user(1)  # a miss: freshcache.load (the query inside), then .fill
        with tracer.start_as_current_span("GET /users/1 again"):
            get_user(1)  # a hit: no span
        get_user.invalidate(1)  # freshcache.invalidate

    for span in spans.get_finished_spans():
        parent = "" if span.parent is None else " (child)"
        print(f"span {span.name}{parent}: {dict(span.attributes or {})}")
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name in ("freshcache.lookups", "freshcache.loads"):
                    for p in metric.data.data_points:
                        shown = {
                            k: v
                            for k, v in p.attributes.items()
                            if k != "freshcache.cache"
                        }
                        print(f"metric {metric.name} {shown} = {p.value}")  # type: ignore[union-attr]
    meters.shutdown()
    tracers.shutdown()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
