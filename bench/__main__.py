"""``python -m bench <command>``: freshcache's benchmarks.

Speeds are printed as ratios to a baseline measured in the same run: the
machine's absolute numbers are too noisy to compare across runs.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_REDIS = "redis://127.0.0.1:6379/15"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    hits = commands.add_parser(
        "hits", help="cost of a cache hit vs baselines and peers (targets P1-P3)"
    )
    hits.add_argument(
        "--quick", action="store_true", help="fewer iterations (smoke test)"
    )
    hits.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    hits.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS,
        help=f"Redis for P2/P3 (default {DEFAULT_REDIS}; keys use a per-run prefix "
        "and are removed at the end)",
    )
    hits.add_argument(
        "--pool-size",
        type=int,
        default=16,
        help="connection pool size for P3 (default 16)",
    )
    hits.add_argument(
        "--tasks", type=int, default=100, help="P3 concurrent tasks (default 100)"
    )
    hits.add_argument(
        "--total", type=int, help="P3 hits per round (default 20,000; --quick: 4,000)"
    )
    hits.add_argument(
        "--only",
        action="append",
        choices=["p1", "p1-async", "p2", "p3"],
        help="run only these sections (repeatable)",
    )
    hits.add_argument(
        "--plain", action="store_true", help="plain-text tables (no rich)"
    )
    hits.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 if a freshcache target is missed",
    )

    profile = commands.add_parser(
        "profile", help="cProfile one freshcache hit path (l1, l1-async, l2, l2-async)"
    )
    profile.add_argument("path", choices=["l1", "l1-async", "l2", "l2-async"])
    profile.add_argument("-n", type=int, default=100_000, help="hits to profile")
    profile.add_argument("--top", type=int, default=20, help="functions to print")
    profile.add_argument("--redis-url", default=DEFAULT_REDIS)

    pieces = commands.add_parser(
        "pieces", help="freshcache's L1 and L2 hit paths timed piece by piece"
    )
    pieces.add_argument("--quick", action="store_true")
    pieces.add_argument("--redis-url", default=DEFAULT_REDIS)

    coherence = commands.add_parser(
        "coherence",
        help="invalidation reaching another process's L1, vs raw pub/sub (P7)",
    )
    coherence.add_argument(
        "--rounds", type=int, default=1000, help="timed rounds (default 1,000)"
    )
    coherence.add_argument(
        "--json", metavar="PATH", help="also write the results (every sample) as JSON"
    )
    coherence.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS,
        help=f"Redis (default {DEFAULT_REDIS}; keys and channels use a per-run "
        "prefix, keys are removed at the end)",
    )
    coherence.add_argument(
        "--markdown", action="store_true", help="print the table as Markdown"
    )
    coherence.add_argument(
        "--bound-cost",
        action="store_true",
        help="instead: L1 hit rate with and without the staleness bound, on a "
        "quiet and a loaded machine (the race harness; needs PostgreSQL)",
    )
    coherence.add_argument(
        "--seconds", type=float, default=8.0, help="per --bound-cost run (default 8)"
    )

    envelope = commands.add_parser(
        "envelope",
        help="the envelope's integrity check: checksums and codec encode/decode cost",
    )
    envelope.add_argument("--quick", action="store_true")
    envelope.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="also time CHECKOUT's envelope.py, interleaved (before/after)",
    )

    writes = commands.add_parser(
        "writes",
        help="write-behind vs write-through throughput, latency, DB round trips (P8)",
    )
    writes.add_argument(
        "--writes", type=int, default=4000, help="writes per side (default 4,000)"
    )
    writes.add_argument(
        "--block", type=int, default=200, help="writes per alternating block"
    )
    writes.add_argument(
        "--batch-size", type=int, default=500, help="the worker's batch size"
    )
    writes.add_argument(
        "--redis-url",
        default=None,
        help="Redis to use (default: a redis-server of its own with AOF "
        "appendfsync always, started and removed by the run)",
    )
    writes.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL DSN (two tables of the run's own, dropped at the end)",
    )
    writes.add_argument(
        "--clients",
        default="1,8",
        help="client thread counts, comma-separated (default 1,8)",
    )
    writes.add_argument("--markdown", action="store_true")
    writes.add_argument("--json", metavar="PATH")

    hitrate = commands.add_parser(
        "hitrate", help="L1 eviction policies on real traces, vs LRU and peers (P6)"
    )
    hitrate.add_argument("--traces-dir", help="default: ../shared/traces")
    hitrate.add_argument(
        "--trace", action="append", help="only traces whose name contains this"
    )
    hitrate.add_argument(
        "--quick", action="store_true", help="100,000 requests, 2 sizes per trace"
    )
    hitrate.add_argument(
        "--limit", type=int, default=1_000_000, help="requests per trace (1,000,000)"
    )
    hitrate.add_argument("--full", action="store_true", help="whole traces")
    hitrate.add_argument("--plot", metavar="DIR", help="write hitrate-<trace>.png")
    hitrate.add_argument("--json", metavar="PATH")
    hitrate.add_argument(
        "--no-timing", action="store_true", help="skip the hit-path timings"
    )

    stampede = commands.add_parser(
        "stampede",
        help="thundering herds: cold-key stampede (P4), hot key across expiry (P5)",
    )
    stampede.add_argument(
        "--quick", action="store_true", help="small run (smoke test; noisy figures)"
    )
    stampede.add_argument("--redis-url", default=DEFAULT_REDIS)
    stampede.add_argument("--json", metavar="PATH", help="also write every figure")
    stampede.add_argument(
        "--plot", metavar="PNG", help="P5: database calls per second around expiry"
    )
    stampede.add_argument(
        "--only", action="append", help="run only these approaches (repeatable)"
    )
    stampede.add_argument(
        "--scenario", action="append", choices=["p4", "p5"], help="default: both"
    )
    stampede.add_argument(
        "--callers", type=int, help="P4 callers per process (default 250; --quick 50)"
    )
    stampede.add_argument(
        "--p5-callers", type=int, help="P5 callers per process (default 20; --quick 5)"
    )
    stampede.add_argument(
        "--p5-interval", type=float, default=0.01, help="P5 pause between calls (s)"
    )
    stampede.add_argument(
        "--ttl", type=float, help="P5 soft TTL (default 2 s; --quick 1 s)"
    )
    stampede.add_argument(
        "--markdown", action="store_true", help="print the tables as Markdown"
    )
    stampede.add_argument(
        "--spread",
        nargs="+",
        metavar="JSON",
        help="print the key figures of earlier --json dumps side by side; run nothing",
    )

    scale = commands.add_parser(
        "scale",
        help="L2 hit throughput on one Redis and on clusters of 1, 2 and 3 "
        "primaries, many client processes (servers of its own)",
    )
    scale.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 clients, 200 keys, 1 window of 0.3 s each",
    )
    scale.add_argument(
        "--clients", type=int, help="client processes (default 6; --quick 2)"
    )
    scale.add_argument(
        "--seconds", type=float, help="length of one window (default 1; --quick 0.3)"
    )
    scale.add_argument(
        "--rounds",
        type=int,
        help="windows per topology and kind of read (default 5; --quick 1)",
    )
    scale.add_argument(
        "--keys", type=int, help="keys filled per topology (default 10,000)"
    )
    scale.add_argument(
        "--primaries",
        default="1,2,3",
        help="cluster sizes, comma-separated (default 1,2,3)",
    )
    scale.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        help="freshcache's per-call deadline (default 1 s, not 50 ms: a "
        "scheduling stall must not turn a hit into a miss)",
    )
    scale.add_argument("--markdown", action="store_true")
    scale.add_argument("--plain", action="store_true", help="plain-text tables")
    scale.add_argument("--json", metavar="PATH")

    report = commands.add_parser(
        "report", help="print the Markdown tables of a `hits --json` dump"
    )
    report.add_argument("path")

    args = parser.parse_args(argv)
    if args.command == "envelope":
        from bench import envelope as envelope_module

        return envelope_module.run(quick=args.quick, against=args.against)
    if args.command == "pieces":
        from bench import pieces as pieces_module

        return pieces_module.run(quick=args.quick, redis_url=args.redis_url)
    if args.command == "coherence" and args.bound_cost:
        from bench import bound_cost

        return bound_cost.run(
            redis_url=args.redis_url, seconds=args.seconds, markdown=args.markdown
        )
    if args.command == "coherence":
        from bench import coherence as coherence_module

        return coherence_module.run(
            rounds=args.rounds,
            json_path=args.json,
            redis_url=args.redis_url,
            markdown=args.markdown,
        )
    if args.command == "writes":
        from bench import writes as writes_module

        return writes_module.run(
            writes=args.writes,
            block=args.block,
            batch_size=args.batch_size,
            redis_url=args.redis_url,
            postgres=args.postgres,
            markdown=args.markdown,
            json_path=args.json,
            clients=[int(c) for c in args.clients.split(",")],
        )
    if args.command == "hitrate":
        from bench import hitrate as hitrate_module

        return hitrate_module.run(
            traces_dir=args.traces_dir,
            only=args.trace,
            quick=args.quick,
            full=args.full,
            limit=args.limit,
            plot_dir=args.plot,
            json_path=args.json,
            skip_timing=args.no_timing,
        )
    if args.command == "stampede":
        from bench import stampede as stampede_module

        if args.spread:
            print(stampede_module.spread(args.spread))
            return 0
        return stampede_module.run(
            quick=args.quick,
            redis_url=args.redis_url,
            json_path=args.json,
            plot_path=args.plot,
            only=args.only,
            scenarios=args.scenario or ["p4", "p5"],
            callers=args.callers or (50 if args.quick else 250),
            p5_callers=args.p5_callers or (5 if args.quick else 20),
            p5_interval=args.p5_interval,
            ttl=args.ttl,
            markdown_out=args.markdown,
        )
    if args.command == "scale":
        from bench import scale as scale_module

        return scale_module.run(
            quick=args.quick,
            clients=args.clients or (2 if args.quick else 6),
            seconds=args.seconds or (0.3 if args.quick else 1.0),
            rounds=args.rounds or (1 if args.quick else 5),
            keys=args.keys or (200 if args.quick else 10_000),
            primaries=[int(n) for n in args.primaries.split(",")],
            timeout=args.timeout,
            json_path=args.json,
            markdown_out=args.markdown,
            plain=args.plain,
        )
    if args.command == "report":
        import json

        from bench._timing import markdown

        with open(args.path, encoding="utf-8") as f:
            data = json.load(f)
        meta = data["meta"]
        print(
            f"Run of {meta['date']}: Python {meta['python']}, {meta['platform']}, "
            f"{meta['cpus']} shared CPUs, Redis {meta.get('redis_server')}, "
            f"{'quick' if meta['quick'] else 'full'} run "
            f"in {meta.get('elapsed_s')} s, at commit {meta.get('git_commit', '?')}.\n"
        )
        versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        print(f"Versions: {versions}.\n")
        print(markdown(data["sections"]))
        return 0
    if args.command == "hits":
        from bench import hits as hits_module

        return hits_module.run(
            quick=args.quick,
            json_path=args.json,
            redis_url=args.redis_url,
            pool_size=args.pool_size,
            tasks=args.tasks,
            total=args.total,
            only=args.only,
            plain=args.plain,
            check=args.check,
        )
    from bench import profile as profile_module

    return profile_module.run(
        args.path, n=args.n, top=args.top, redis_url=args.redis_url
    )


if __name__ == "__main__":
    sys.exit(main())
