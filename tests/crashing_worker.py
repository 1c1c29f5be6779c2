"""``freshcache worker`` that exits at once (``os._exit``, as ``kill -9`` would)
right after its N-th database commit, before the acknowledgement.

Usage: ``python tests/crashing_worker.py N <the arguments of freshcache worker>``.
The crash comes through the worker's ``on_commit`` callback: nothing in the
library reads a test switch.
"""

from __future__ import annotations

import argparse
import os
import sys

from freshcache.cli import worker

EXIT_CODE = 99


def main() -> int:
    left = int(sys.argv[1])
    parser = argparse.ArgumentParser(prog="crashing_worker")
    worker.add_parser(parser.add_subparsers())
    args = parser.parse_args(["worker", *sys.argv[2:]])

    def on_commit() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            os._exit(EXIT_CODE)

    return worker.run(args, on_commit=on_commit)


if __name__ == "__main__":
    sys.exit(main())
