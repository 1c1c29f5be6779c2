"""``python -m bench pieces``: the freshcache hit paths taken apart, piece by piece.

A diagnostic for whoever optimizes the core: it reaches into private
attributes (the decorator's closure, ``cache.engine.l1``, ``cache.engine.l2``), so
it may need updating when those change; a piece it cannot find is printed as
``n/a``. Figures are ratios to a baseline measured in the same run, as in
``python -m bench hits``.

* L1: each piece of the sync decorated hit in a tight loop, net of the cost
  of calling a one-argument Python function (the loop's own floor).
* L2: each layer of the sync Redis hit, with real round trips, as medians
  (a Python-level cost is several times larger between two system calls than
  in a hot loop, so the L2 pieces are measured with the I/O in place).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

import orjson

from bench._timing import best_per_call, sample_calls, sync_loop
from bench.hits import TTL, USER_ID, VALUE, Counter, make_loader


def _print(
    title: str, rows: list[tuple[str, str, str]], header: tuple[str, str, str]
) -> None:
    print(f"\n{title}\n")
    print(f"| {header[0]} | {header[1]} | {header[2]} |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")


def l1(*, repeats: int) -> None:
    from freshcache import Cache, NullMetrics

    prefix = f"fcbenchpieces{os.getpid()}"
    cache = Cache(prefix=prefix)
    fn = cache.cached("user:{user_id}", ttl=TTL)(make_loader(Counter()))
    fn(USER_ID)
    quiet = Cache(prefix=prefix, metrics=NullMetrics())
    fn_quiet = quiet.cached("user:{user_id}", ttl=TTL)(make_loader(Counter()))
    fn_quiet(USER_ID)
    lru = functools.lru_cache(maxsize=128)(make_loader(Counter()))
    lru(USER_ID)

    def floor(x: Any) -> Any:
        return x

    def star(*args: Any, **kwargs: Any) -> Any:
        return args

    loops: dict[str, Callable[[int], float]] = {
        "functools.lru_cache hit (baseline)": sync_loop(lru, USER_ID),
        "freshcache decorated hit": sync_loop(fn, USER_ID),
        "freshcache decorated hit, NullMetrics": sync_loop(fn_quiet, USER_ID),
        "call of def f(x) (loop floor)": sync_loop(floor, USER_ID),
        "call of def f(*args, **kwargs)": sync_loop(star, USER_ID),
    }
    try:
        cells = dict(
            zip(
                fn.__code__.co_freevars,
                (c.cell_contents for c in fn.__closure__ or ()),
                strict=True,
            )
        )
        render, now, hit, namespace = (
            cells["render"],
            cells["now"],
            cells["hit"],
            cells["namespace"],
        )
        local = cache.engine.l1.store
        args: tuple[Any, ...] = (USER_ID,)
        kwargs: dict[str, Any] = {}
        key = render(args, kwargs)
        entry = local.get(key)
        loops |= {
            "render(args, kwargs) (key template)": sync_loop(
                lambda _: render(args, kwargs), USER_ID
            ),
            "MemoryStore.get(key)": sync_loop(lambda _: local.get(key), USER_ID),
            "now() < entry.fresh_until": sync_loop(
                lambda _: now() < entry.fresh_until, USER_ID
            ),
            "metrics.hit(tier, namespace)": sync_loop(
                lambda _: hit("l1", namespace), USER_ID
            ),
        }
    except Exception as exc:
        print(f"n/a: pieces of the L1 hit path: {type(exc).__name__}: {exc}")
    best = best_per_call(loops, repeats=repeats, min_seconds=0.02)
    base = best["call of def f(x) (loop floor)"]
    lru_ns = best["functools.lru_cache hit (baseline)"]
    rows = [
        (name, f"{(value - base) * 1e9:,.0f} ns", f"{value / lru_ns:.1f}x")
        for name, value in best.items()
    ]
    _print(
        "L1 sync hit, piece by piece (tight loop, best of "
        f"{repeats}; net = minus the loop floor)",
        rows,
        ("piece", "net per call", "gross / lru_cache hit"),
    )
    cache.close()
    quiet.close()


def l2(*, count: int, redis_url: str) -> None:
    import redis

    from freshcache import Cache

    prefix = f"fcbenchpieces{os.getpid()}"
    cache = Cache(redis_url, prefix=prefix)
    raw = redis.Redis.from_url(redis_url)
    raw_key = f"{prefix}:raw"
    raw.set(raw_key, orjson.dumps(VALUE), ex=TTL)
    try:
        fn = cache.cached("user:{user_id}", ttl=TTL)(make_loader(Counter()))
        fn(USER_ID)
        calls: dict[str, Callable[[Any], Any]] = {
            "raw GET + json.loads (baseline)": lambda _: json.loads(raw.get(raw_key)),
            "freshcache decorated hit": fn,
        }
        try:
            store = cache.engine.l2
            full = cache.engine.head + fn.key(USER_ID)
            client_get = store._client.get
            codec = store._codec
            calls |= {
                "raw GET of the envelope (no decode)": lambda _: raw.get(full),
                "freshcache's client: GET": lambda _: client_get(full),
                "freshcache's client: GET + codec.decode": lambda _: codec.decode(
                    full, client_get(full)
                ),
                "RedisStore.get (slots, breaker, metrics, decode)": lambda _: store.get(
                    full
                ),
            }
            slots = getattr(store, "_slots", None)
            if slots is not None:

                def with_slots(_: Any) -> Any:
                    slots.acquire(0.05)
                    try:
                        return client_get(full)
                    finally:
                        slots.release()

                calls["freshcache's client: slot + GET"] = with_slots
        except Exception as exc:
            print(f"n/a: pieces of the L2 hit path: {type(exc).__name__}: {exc}")
        for call in calls.values():
            for _ in range(200):
                call(USER_ID)
        samples = sample_calls(calls, USER_ID, count=count)
        base = samples["raw GET + json.loads (baseline)"].median
        rows = [
            (name, f"{s.median / 1000:,.1f} us", f"{s.median / base:.3f}x")
            for name, s in samples.items()
        ]
        _print(
            f"L2 sync hit, layer by layer (median of {count:,} round trips each, "
            "interleaved)",
            rows,
            ("layer", "median", "ratio to baseline"),
        )
    finally:
        raw.delete(raw_key)
        raw.close()
        cache.clear()
        cache.close()


def run(*, quick: bool, redis_url: str) -> int:
    l1(repeats=5 if quick else 25)
    l2(count=500 if quick else 5000, redis_url=redis_url)
    return 0
