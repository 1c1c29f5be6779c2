"""Can this Redis keep write-behind's promise? A verdict on its settings.

Inputs are what ``CONFIG GET`` and ``INFO`` answer; the caller logs the
warnings and raises on a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Policies that never evict a key without a TTL (write-behind streams have none).
SAFE_POLICIES = frozenset({"noeviction", "volatile-lru", "volatile-lfu",
                           "volatile-random", "volatile-ttl"})  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    refusals: tuple[str, ...] = ()  # the write-behind must not start
    warnings: tuple[str, ...] = ()  # it starts, but the promise is weaker
    durable: bool = False  # an acknowledged write survives a crash of Redis


def judge(
    config: Mapping[str, str], *, allow_eviction: bool = False, replicas: int = 0
) -> Verdict:
    """The verdict on a server's ``config`` (``maxmemory-policy``,
    ``appendonly``, ``appendfsync``; missing: ``CONFIG`` was refused)."""
    refusals: list[str] = []
    warnings: list[str] = []
    policy = config.get("maxmemory-policy")
    if policy is None:
        warnings.append(
            "cannot read maxmemory-policy (CONFIG GET refused, by an ACL or a "
            "renamed command): write-behind assumes nothing and starts, not "
            "durable; make sure the server never evicts keys without a TTL "
            "(noeviction or a volatile-* policy)"
        )
    elif policy not in SAFE_POLICIES:
        message = (
            f"maxmemory-policy is {policy!r}: Redis may evict the write-behind "
            "queue and lose acknowledged writes; use 'noeviction'"
        )
        (warnings if allow_eviction else refusals).append(message)
    appendonly = config.get("appendonly")
    appendfsync = config.get("appendfsync")
    durable = appendonly == "yes" and appendfsync == "always"
    if appendonly is None or appendfsync is None:
        warnings.append(
            "cannot read the AOF settings (CONFIG GET refused): acknowledged "
            "writes survive a Redis crash only with appendonly yes and "
            "appendfsync always"
        )
    elif appendonly != "yes":
        warnings.append(
            "appendonly is 'no': a Redis crash or restart loses every write "
            "not yet applied to the database; set appendonly yes and "
            "appendfsync always"
        )
    elif appendfsync != "always":
        warnings.append(
            f"appendfsync is {appendfsync!r}: a crash of Redis (or its machine) "
            "can lose up to a second of acknowledged writes; set appendfsync always"
        )
    if (
        replicas == 0
        and config.get("role") == "master"
        and config.get("connected_slaves", "0") not in ("", "0")
    ):
        warnings.append(
            "Redis has replicas but replicas=0: a failover to a replica that "
            "had not received a write loses it"
        )
    return Verdict(tuple(refusals), tuple(warnings), durable and not refusals)


def weakest(nodes: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The settings of a Redis Cluster's primaries as one server's, the
    weakest of each (a write-behind queue spans them all): a setting one
    primary refused to show is missing, an evicting policy or AOF short of
    ``always`` on any primary wins, and ``connected_slaves`` is the most
    (one primary with a replica is enough for a failover to lose writes)."""
    if not nodes:
        return {}
    merged: dict[str, str] = {}
    for name in ("maxmemory-policy", "appendonly", "appendfsync"):
        values = [node.get(name) for node in nodes]
        if any(value is None for value in values):
            continue
        known = [value for value in values if value is not None]
        if name == "maxmemory-policy":
            unsafe = [value for value in known if value not in SAFE_POLICIES]
            merged[name] = (unsafe or known)[0]
        else:
            best = "yes" if name == "appendonly" else "always"
            merged[name] = next((v for v in known if v != best), best)
    roles = [node.get("role", "") for node in nodes]
    slaves = [node.get("connected_slaves", "") for node in nodes]
    if all(role == "master" for role in roles) and all(s.isdigit() for s in slaves):
        merged["role"] = "master"
        merged["connected_slaves"] = str(max(int(s) for s in slaves))
    return merged
