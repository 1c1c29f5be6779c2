"""Spawn target of ``python -m bench stampede``: one worker process.

A worker builds one approach (``bench/_herd_approaches.py``) around the
shared loader, opens its connections, meets the other worker(s) at a
``multiprocessing`` barrier, then runs one scenario:

* ``p4``: ``callers`` threads (sync) or tasks (async) call the getter once,
  all at once, on a cold key; each call is timed on its own.
* ``p5``: worker 0 fills the key first (the warm-up load, not counted), both
  workers meet, then ``callers`` threads/tasks call the getter in a loop
  (pause ``interval`` between calls) until ``end`` seconds after the fill,
  so the run spans the key's soft expiry; each call is timed.

The loader INCRs a counter in Redis (every process sees it), notes its start
time (``time.monotonic()``: one clock for the whole machine on Linux) and
sleeps ``loader_s``; its "database" is that sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

BARRIER_TIMEOUT = 60.0


@dataclass
class Job:
    """What one worker runs (pickled into the spawned process)."""

    approach: str
    scenario: str  # "p4" or "p5"
    index: int
    url: str
    prefix: str
    counter: str
    loader_s: float
    callers: int
    ttl: float
    stale: float
    interval: float = 0.0
    end: float = 0.0  # p5: seconds after the warm fill when the load stops


@dataclass
class Report:
    """What one worker saw. Times are ``time.monotonic()`` seconds."""

    index: int
    calls: list[tuple[float, float, int]] = field(default_factory=list)
    # (start, latency, loader call number of the value returned)
    loads: list[float] = field(default_factory=list)  # loader starts here
    extra: dict[str, int] = field(default_factory=dict)
    filled_at: float = 0.0  # p5, worker 0: when the warm fill returned
    failure: str | None = None


def main(job: Job, barrier: Any, filled: Any, results: Any) -> None:  # pragma: no cover
    """Process entry point: run ``job``, put a ``Report`` on ``results``."""
    from bench._herd_approaches import approaches

    report = Report(job.index)
    try:
        approach = approaches()[job.approach]
        if approach.mode == "sync":
            _run_sync(job, approach, barrier, filled, report)
        else:
            asyncio.run(_run_async(job, approach, barrier, filled, report))
    except BaseException:
        barrier.abort()
        report.failure = traceback.format_exc()
    results.put(report)


def _net(report: Report, base: dict[str, int]) -> None:
    """Counts of the measured phase only (the warm-up's subtracted)."""
    for name, count in base.items():
        report.extra[name] = report.extra.get(name, 0) - count


def _config(job: Job, report: Report) -> Any:
    from bench._herd_approaches import Config

    return Config(job.url, job.prefix, job.ttl, job.stale, report.extra)


def _run_sync(
    job: Job, approach: Any, barrier: Any, filled: Any, report: Report
) -> None:
    import redis

    # The counter's own client never runs out of connections (it is the
    # "database", not a contender).
    client = redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(
            job.url, max_connections=2 * job.callers, timeout=60
        )
    )
    loads = report.loads

    def loader() -> dict[str, int]:
        loads.append(time.monotonic())
        n = int(client.incr(job.counter))
        time.sleep(job.loader_s)
        return {"n": n}

    cfg = _config(job, report)
    get, warm, close = approach.build(cfg, loader, **dict(approach.options))
    calls = report.calls
    try:
        warm()
        base = cfg.counts()
        if job.scenario == "p4":
            # Every thread is started before the processes meet: the last one
            # to arrive waits for the other process, then all go at once.
            start = threading.Barrier(
                job.callers, action=lambda: barrier.wait(BARRIER_TIMEOUT)
            )

            def once(_: int) -> None:
                start.wait(BARRIER_TIMEOUT)
                t0 = time.monotonic()
                value = get()
                calls.append((t0, time.monotonic() - t0, value["n"]))

            with ThreadPoolExecutor(max_workers=job.callers) as pool:
                list(pool.map(once, range(job.callers)))
        else:
            if job.index == 0:
                get()  # the warm fill
                filled.value = report.filled_at = time.monotonic()
                loads.clear()
                base = cfg.counts()
            barrier.wait(BARRIER_TIMEOUT)
            stop = filled.value + job.end
            pause = job.interval

            def loop(_: int) -> None:
                mono = time.monotonic
                while (t0 := mono()) < stop:
                    value = get()
                    calls.append((t0, mono() - t0, value["n"]))
                    time.sleep(pause)

            with ThreadPoolExecutor(max_workers=job.callers) as pool:
                list(pool.map(loop, range(job.callers)))
    finally:
        close()
        client.close()
    _net(report, base)


async def _run_async(
    job: Job, approach: Any, barrier: Any, filled: Any, report: Report
) -> None:
    import redis.asyncio as aredis

    client = aredis.Redis(
        connection_pool=aredis.BlockingConnectionPool.from_url(
            job.url, max_connections=2 * job.callers, timeout=60
        )
    )
    loads = report.loads

    async def loader() -> dict[str, int]:
        loads.append(time.monotonic())
        n = int(await client.incr(job.counter))
        await asyncio.sleep(job.loader_s)
        return {"n": n}

    cfg = _config(job, report)
    get, warm, close = approach.build(cfg, loader, **dict(approach.options))
    calls = report.calls
    loop = asyncio.get_running_loop()
    try:
        await warm()
        base = cfg.counts()
        if job.scenario == "p4":
            go = asyncio.Event()

            async def once() -> None:
                await go.wait()
                t0 = time.monotonic()
                value = await get()
                calls.append((t0, time.monotonic() - t0, value["n"]))

            tasks = [asyncio.create_task(once()) for _ in range(job.callers)]
            await asyncio.sleep(0)  # every task is waiting on ``go``
            await loop.run_in_executor(None, barrier.wait, BARRIER_TIMEOUT)
            go.set()
            await asyncio.gather(*tasks)
        else:
            if job.index == 0:
                await get()  # the warm fill
                filled.value = report.filled_at = time.monotonic()
                loads.clear()
                base = cfg.counts()
            await loop.run_in_executor(None, barrier.wait, BARRIER_TIMEOUT)
            stop = filled.value + job.end
            pause = job.interval

            async def caller() -> None:
                mono = time.monotonic
                while (t0 := mono()) < stop:
                    value = await get()
                    calls.append((t0, mono() - t0, value["n"]))
                    await asyncio.sleep(pause)

            await asyncio.gather(*(caller() for _ in range(job.callers)))
    finally:
        await close()
        await client.aclose()
    _net(report, base)
