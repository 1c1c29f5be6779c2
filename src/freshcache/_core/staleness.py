"""May in-process state (an L1 entry, a cached namespace version) be used?

Pure: the caller passes the age of its watermark (how long ago it last knew
every earlier invalidation had been applied, on its own monotonic clock),
the bound, the degraded mode's grace and whether the bus is connected.
docs/coherence.md, section 6a, has the argument.
"""

from __future__ import annotations

import enum
import math


class Local(enum.Enum):
    SERVE = "serve"  # within the bound
    DEGRADED = "degraded"  # past it, but the bus is down and within the grace
    REFUSE = "refuse"  # go to Redis


def local_verdict(
    age: float, bound: float, *, grace: float = 0.0, connected: bool = True
) -> Local:
    """``bound`` inf: not bounded (always serve). ``grace`` (the degraded
    mode, ``L1.serve_stale_when_down``) applies only while the bus is down."""
    if age < bound or bound == math.inf:
        return Local.SERVE
    if grace and not connected and age < bound + grace:
        return Local.DEGRADED
    return Local.REFUSE
