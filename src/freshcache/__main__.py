"""``python -m freshcache``: the same as the ``freshcache`` command."""

from __future__ import annotations

import sys

from freshcache.cli import main

if __name__ == "__main__":
    sys.exit(main())
