"""How long to wait before retrying an invalidation that could not reach Redis.

Pure: the caller passes the attempt number and a uniform random draw in
[0, 1). Exponential from ``first`` up to ``cap``, with "equal jitter" (half
fixed, half random), so processes that lost Redis together do not retry in
lockstep, and a retry never waits longer than ``cap`` once Redis is back.
"""

from __future__ import annotations

RETRY_FIRST = 0.01  # seconds before the first retry
RETRY_CAP = 0.25  # the longest wait between two retries (each retry itself
# may take the whole invalidation budget while Redis does not answer)


def retry_delay(
    attempt: int, draw: float, *, first: float = RETRY_FIRST, cap: float = RETRY_CAP
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first)."""
    if attempt < 0 or not 0.0 <= draw < 1.0:
        raise ValueError("attempt must be >= 0 and draw in [0, 1)")
    ceiling = min(cap, first * 2.0 ** min(attempt, 32))
    return ceiling / 2 + ceiling / 2 * draw
