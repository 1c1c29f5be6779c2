"""A process whose wall clock is off by a given number of seconds, for
tests/test_clock_skew.py: ``python -m tests.skewed_worker URL PREFIX SKEW``
then one command per line on stdin, one JSON reply per line on stdout:

* ``set KEY VALUE TTL STALE_TTL`` -> ``true`` if stored;
* ``get KEY`` -> the fresh value, or null;
* ``load KEY VALUE TTL`` -> ``[value returned, whether the loader ran]``.

``time.time`` is replaced before freshcache is imported, so the cache sees
the skewed clock as its system clock, as on a machine whose clock is off.
"""

from __future__ import annotations

import json
import sys
import time

_real = time.time
SKEW = float(sys.argv[3])
time.time = lambda: _real() + SKEW

from freshcache import Cache  # noqa: E402  (after the clock is skewed)


def main() -> None:  # pragma: no cover - runs in a child process
    with Cache(sys.argv[1], prefix=sys.argv[2]) as cache:
        print(json.dumps("ready"), flush=True)
        for line in sys.stdin:
            command, key, *args = line.split()
            if command == "set":
                value, ttl, stale = args
                reply: object = cache.set(
                    key, value, ttl=float(ttl), stale_ttl=float(stale)
                )
            elif command == "get":
                reply = cache.get(key, None)
            else:
                loads = cache.stats().loads
                value = cache.get_or_load(key, lambda v=args[0]: v, ttl=float(args[1]))
                reply = [value, cache.stats().loads > loads]
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
