"""The ``freshcache`` command line: ``freshcache demo``, ``freshcache worker``,
and the live view: ``freshcache stats``, ``freshcache inspect``, ``freshcache keys``.

The demo needs the ``cli`` extra (rich): ``pip install 'freshcache[cli]'``;
the worker needs its sink's extra (``postgres``, ``sqlalchemy``) or nothing
(SQLite).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from freshcache.cli._secrets import POSTGRES, REDIS

INSTALL_HINT = (
    "freshcache: the command line needs rich; install it with\n"
    "    pip install 'freshcache[cli]'"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


_SECRETS_EPILOG = (
    "Each URL or DSN may also come from a file (--redis-file PATH: its first "
    "line) or the environment (FRESHCACHE_REDIS_URL, FRESHCACHE_POSTGRES_DSN, "
    "FRESHCACHE_SQLALCHEMY_URL); the command line wins over the environment. "
    "A password on the command line is visible to every user of the machine "
    "(ps, /proc): prefer the file or the variable."
)


def _have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _demo(args: argparse.Namespace) -> int:
    from freshcache.cli._secrets import UsageError

    try:
        redis, postgres = REDIS.resolve(args), POSTGRES.resolve(args)
    except UsageError as exc:
        print(f"freshcache demo: {exc}", file=sys.stderr)
        return 2
    if not _have_rich():
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    if args.processes is not None and args.processes > 1 and redis is None:
        print(
            "freshcache demo: --processes above 1 needs --redis (the embedded "
            "cache lives in one process)",
            file=sys.stderr,
        )
        return 2
    from freshcache.cli._demo_options import DemoOptions
    from freshcache.cli.demo import run

    options = DemoOptions(
        seconds=args.seconds,
        baseline_seconds=args.baseline_seconds,
        readers=args.readers,
        writers=args.writers,
        write_interval=args.write_interval,
        users=args.users,
        teams=args.teams,
        seed=args.seed,
        redis=redis,
        postgres=postgres,
        processes=args.processes,
        write_seconds=args.write_seconds,
    )
    return run(options)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freshcache",
        description="freshcache: caching that knows when cached data is wrong.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a simulated read-heavy workload and check it for stale reads",
        description=(
            "Readers read users (Zipf-skewed) and teams' members from a database "
            "while writers update users and invalidate what depends on them "
            "after commit: without a cache, with naive cache-aside, and with "
            "freshcache (an event handler invalidates the user and, by tag, every "
            "team list showing it). Reports hit rate, database queries, latency, "
            "and every stale read a consistency checker finds in either cache. "
            "Default: in-process cache over a temporary SQLite file; with --redis, "
            "an L1 in each of several processes over Redis."
        ),
    )
    demo.add_argument(
        "--seconds",
        type=_positive_float,
        default=5.0,
        help="length of each cached phase, naive and freshcache (default: 5)",
    )
    demo.add_argument(
        "--baseline-seconds",
        type=_positive_float,
        default=None,
        help="length of the uncached phase (default: seconds/5, between 0.5 and 2)",
    )
    demo.add_argument(
        "--readers",
        type=_positive_int,
        default=8,
        help="reader threads, spread over the processes (default: 8)",
    )
    demo.add_argument(
        "--writers",
        type=_non_negative_int,
        default=1,
        help="writer threads, spread over the processes (default: 1)",
    )
    demo.add_argument(
        "--write-interval",
        type=_positive_float,
        default=0.02,
        help="mean seconds between writes per writer (default: 0.02)",
    )
    demo.add_argument(
        "--users", type=_positive_int, default=2000, help="user rows (default: 2000)"
    )
    demo.add_argument(
        "--teams", type=_positive_int, default=50, help="team rows (default: 50)"
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed for the request mix (default: random)",
    )
    REDIS.add(
        demo.add_mutually_exclusive_group(),
        "use an L1 over a Redis cache at URL instead of the in-process one "
        f"(default: {REDIS.variable} if set)",
    )
    demo.add_argument(
        "--processes",
        type=_positive_int,
        default=None,
        help=(
            "worker processes (spawned) running the readers and writers; above 1 "
            "needs --redis (default: 1 embedded, 2 with --redis)"
        ),
    )
    POSTGRES.add(
        demo.add_mutually_exclusive_group(),
        "use PostgreSQL at DSN instead of a temporary SQLite file "
        f"(default: {POSTGRES.variable} if set)",
    )
    demo.add_argument(
        "--write-seconds",
        type=float,
        default=2.0,
        help=(
            "with --redis: length of each side of the write-heavy phase, commit + "
            "invalidate then write-behind with a worker draining the queue "
            "(default: 2; 0 skips it)"
        ),
    )
    demo.set_defaults(handler=_demo)
    from freshcache.cli import worker

    worker.add_parser(commands)
    from freshcache.cli import live

    viewers = live.add_parsers(commands)
    for command in (demo, commands.choices["worker"], *viewers):
        command.epilog = _SECRETS_EPILOG
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``freshcache`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:  # the demo has already cleaned up after itself
        return 130
