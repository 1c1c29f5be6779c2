"""freshcache.contrib.prometheus: every counter and histogram, read back
from the Prometheus exposition (``prometheus_client.parser``), in one
process and summed over two worker processes (multiprocess mode)."""

from __future__ import annotations

import json
import math
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from freshcache import BUCKETS, L1, MISS, Cache
from freshcache.contrib.prometheus import COUNTERS, counter_samples, instrument

ROOT = Path(__file__).resolve().parent.parent


def exposition(
    registry: CollectorRegistry,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of every sample, parsed."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    **labels: str,
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_exposition_carries_every_counter_and_histogram(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    registry = CollectorRegistry()
    with (
        Cache(redis_url, prefix=key_prefix, timeout=1.0) as writer,
        # a staleness bound longer than the test: on a loaded machine a late
        # ping would send an L1 read on to Redis (the bound at work), and
        # this test counts exact L1 hits
        Cache(
            redis_url, prefix=key_prefix, timeout=1.0, l1=L1(max_staleness=60)
        ) as cache,
    ):
        exporter = instrument(cache, name="app", registry=registry)
        writer.set("user:1", {"id": 1})
        cache.get("user:1")  # subscribes; until the first ping, L1 is bypassed
        deadline = time.monotonic() + 10
        while not cache.engine.current():
            assert time.monotonic() < deadline, "the bus never came up"
            time.sleep(0.01)
        before = cache.stats()
        assert cache.get("user:1") == {"id": 1}  # L1 hit (filled above)
        assert cache.get_or_load("user:2", lambda: 2) == 2  # miss + load
        assert cache.get("user:3") is MISS  # miss, no load
        assert cache.get_many(["user:1", "user:2", "team:9"]) == {
            "user:1": {"id": 1},
            "user:2": 2,
        }
        with pytest.raises(ZeroDivisionError):
            cache.get_or_load("team:1", lambda: 1 / 0)  # a failed load
        stats = cache.stats()
        samples = exposition(registry)

        def total(name: str, **labels: str) -> float:
            return value(samples, name, cache="app", **labels)

        # This workload's own counts, on top of the warm-up's (``before``).
        assert stats.lookups.total - before.lookups.total == 7
        assert total("freshcache_lookups_total", namespace="user", outcome="hit") == (
            before.namespaces["user"].lookups.hits + 3
        )
        assert total(
            "freshcache_lookups_total", namespace="user", outcome="miss"
        ) == 2 + (before.namespaces["user"].lookups.misses)
        assert total("freshcache_lookups_total", namespace="team", outcome="miss") == 2
        assert (
            total(
                "freshcache_tier_lookups_total",
                tier="l1",
                namespace="team",
                outcome="miss",
            )
            == 2
        )
        assert (
            total(
                "freshcache_tier_lookups_total",
                tier="redis",
                namespace="team",
                outcome="miss",
            )
            == 2
        )
        assert total(
            "freshcache_tier_lookups_total", tier="l1", namespace="user", outcome="hit"
        ) == (before.namespaces["user"].l1.hits + 3)
        assert total("freshcache_loads_total") == stats.loads == before.loads + 2
        assert total("freshcache_load_errors_total") == 1
        assert total("freshcache_events_total", event="bus_connect") == 1
        assert total("freshcache_pending_invalidations") == 0

        # Every counter of stats() is in the exposition, with its value.
        for metric, labels, n in counter_samples(stats):
            named = dict(zip(COUNTERS[metric][1], labels, strict=True))
            assert total(f"{metric}_total", **named) == n, (metric, labels)

        # Histograms: cumulative buckets with their bounds, a count and a sum.
        load = stats.latency["load"]
        cumulative = 0
        for bound, n in load.buckets:
            cumulative += n
            le = "+Inf" if math.isinf(bound) else repr(bound)
            assert (
                total("freshcache_latency_seconds_bucket", operation="load", le=le)
                == cumulative
            )
        assert (
            total("freshcache_latency_seconds_count", operation="load")
            == load.count
            == 2
        )
        assert math.isclose(
            total("freshcache_latency_seconds_sum", operation="load"), load.sum
        )
        assert len(
            [
                k
                for k in samples
                if k[0] == "freshcache_latency_seconds_bucket"
                and ("operation", "load") in k[1]
            ]
        ) == len(BUCKETS)

        # Never a key or a value in a label.
        assert not [
            k for k in samples if any("user:" in v or "Ada" in v for _, v in k[1])
        ]
        exporter.close()
        assert not [k for k in exposition(registry) if ("cache", "app") in k[1]]


def test_two_worker_processes_add_up(
    redis_url: str, key_prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    """prometheus-client's multiprocess mode: each worker writes its own
    files; the scrape sums them. The totals equal the sum of what each
    worker's own stats() said."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    workers = [
        subprocess.run(
            [sys.executable, "-m", "tests.prometheus_worker",
             redis_url, key_prefix, str(i)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        for i in range(2)
    ]  # fmt: skip
    for worker in workers:
        assert worker.returncode == 0, worker.stderr
    own = [json.loads(worker.stdout) for worker in workers]
    expected: dict[str, float] = {}
    for counts in own:
        for key, n in counts.items():
            expected[key] = expected.get(key, 0) + n
    assert (
        len({f for f in os.listdir(tmp_path) if f.startswith("counter_")}) == 2
    )  # one per pid

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    samples = exposition(registry)
    checked = 0
    for key, n in expected.items():
        metric, _, joined = key.partition("|")
        labels = dict(
            zip(COUNTERS[metric][1], joined.split(",") if joined else (), strict=True)
        )
        assert value(samples, f"{metric}_total", cache="workers", **labels) == n, key
        checked += 1
    assert checked > 10
    lookups = sum(v for k, v in expected.items() if k.startswith("freshcache_lookups|"))
    assert lookups == 2 * (50 + 60) + 2 * 25  # both workers' every lookup
    loads = expected["freshcache_loads|"]
    assert loads >= 20
    assert (
        value(
            samples,
            "freshcache_latency_seconds_count",
            cache="workers",
            operation="load",
        )
        == loads
    )


def test_import_freshcache_does_not_import_prometheus_client() -> None:
    code = "import sys, freshcache; print('prometheus_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_gunicorn_workers_serve_the_sum_on_metrics(
    redis_url: str, key_prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    """The WSGI example under gunicorn with 2 workers in multiprocess mode:
    whichever worker serves ``/metrics``, it counts every worker's lookups."""
    port = _free_port()
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url,
        "CACHE_PREFIX": key_prefix, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "METRICS_INTERVAL": "0.1",
    }  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4",
         "--bind", f"127.0.0.1:{port}", "examples.prometheus_wsgi:make_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(port, "/user/0")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda i: _get(port, f"/user/{i % 5}"), range(199)))
        pids = {reply["pid"] for reply in replies}
        deadline = time.monotonic() + 10
        while True:  # each worker copies its counts every 0.1 s
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics", timeout=5
            ) as r:
                text = r.read().decode()
            lookups = sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "freshcache_lookups_total"
            )
            if lookups == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert lookups == 200, (lookups, pids)
        assert "freshcache_latency_seconds_bucket" in text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        assert server.stderr is not None
        server.stderr.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        body: dict[str, Any] = json.loads(reply.read())
        return body


def test_the_fastapi_example_serves_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.delenv("REDIS_URL", raising=False)  # the embedded cache
    module = runpy.run_path(str(ROOT / "examples" / "prometheus_fastapi.py"))
    with TestClient(module["make_app"]()) as client:
        assert client.get("/user/1").json() == {"id": 1, "name": "user 1"}
        assert client.get("/user/1").json() == {"id": 1, "name": "user 1"}
        text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    key = (("cache", "example"), ("namespace", "user"))
    assert samples[("freshcache_lookups_total", (*key, ("outcome", "hit")))] == 1
    assert samples[("freshcache_lookups_total", (*key, ("outcome", "miss")))] == 1
