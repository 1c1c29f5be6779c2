"""Eviction policies of the in-process store: which live entry goes next.

Both run under the store's lock, except the hit path: a hit only does
``node.hits += 1`` (inlined in ``MemoryStore.get``); nothing moves. A racing
hit can only cost a policy a little accuracy, never correctness.

* ``S3Fifo`` (the default): S3-FIFO (Yang et al., SOSP 2023) with the size of
  its small queue adapted from its ghost hits, as ARC adapts its target
  (Megiddo and Modha, FAST 2003).
* ``Sieve``: SIEVE (Zhang et al., NSDI 2024), the previous default.

A policy never sees expiry as a reason of its own: the store reclaims expired
entries first (its expiry heap); a policy only reports an expired entry it
happens to meet, so that it is not counted as a live eviction.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

__all__ = ["POLICIES", "Node", "S3Fifo", "Sieve"]

_NEVER: Final = float("inf")


class Node:
    """One entry, and its place in the policy's queues."""

    __slots__ = (
        "expires_at",
        "hits",
        "key",
        "main",
        "next",
        "prev",
        "size",
        "stamp",
        "value",
    )

    prev: Node
    next: Node

    def __init__(self, key: str, value: Any, expires_at: float, size: int) -> None:
        self.key = key
        self.value = value
        self.expires_at = expires_at
        self.size = size
        self.hits = 0  # hits since the policy last looked (saturates at use)
        self.main = False  # S3-FIFO: in the main queue (else the small one)
        self.stamp = 0  # the store's expiry-heap ticket


class _Queue:
    """A FIFO in a circular doubly-linked list around a sentinel
    (``root.next`` is the oldest node, ``root.prev`` the newest)."""

    __slots__ = ("length", "root")

    def __init__(self) -> None:
        root = Node("", None, _NEVER, 0)
        root.prev = root.next = root
        self.root = root
        self.length = 0

    def push(self, node: Node) -> None:
        root = self.root
        last = root.prev
        node.prev = last
        node.next = root
        last.next = node
        root.prev = node
        self.length += 1

    def unlink(self, node: Node) -> None:
        node.prev.next = node.next
        node.next.prev = node.prev
        self.length -= 1

    def swap(self, old: Node, new: Node) -> None:
        new.prev = prev = old.prev
        new.next = nxt = old.next
        prev.next = new
        nxt.prev = new

    def clear(self) -> None:
        root = self.root
        root.prev = root.next = root
        self.length = 0

    def nodes(self) -> list[Node]:
        out = []
        node = self.root.next
        while node is not self.root:
            out.append(node)
            node = node.next
        return out


class S3Fifo:
    """Adaptive S3-FIFO.

    New keys enter a small FIFO; a key evicted from it that was hit there
    (``PROMOTE`` hits) moves to the main FIFO, the others leave a ghost (the
    key only). A key whose ghost is found on insert goes straight to main;
    if that ghost left main, the request counts as a hit of the new node
    (main's single pass was too short for the key: it gets a second one).
    Main is a CLOCK: a node with hits is reinserted with one hit less (at most
    ``MAX_HITS`` count), a node without is evicted (and leaves a ghost).

    The small queue's share starts at ``SMALL`` and adapts: a ghost of a key
    evicted from small means small was too short for it (grow, by ``GROW``
    times ARC's step); one from main means main was (shrink, ARC's step).
    Ghosts are bounded by ``GHOSTS`` times ``ghost_limit`` keys (FIFO); a key
    that is deleted, expires or is too large leaves none, so only the
    policy's own choices teach it.
    """

    SMALL: Final = 0.15
    SMALL_MIN: Final = 0.05
    SMALL_MAX: Final = 0.3
    PROMOTE: Final = 1
    MAX_HITS: Final = 3
    GROW: Final = 1.5  # weight of a small ghost's step (ARC: 1)
    GHOSTS: Final = 1.75  # ghost keys per entry of ``ghost_limit``

    __slots__ = (
        "_ghost_limit",
        "_ghosts",
        "_ghosts_small",
        "_main",
        "_share",
        "_small",
    )

    def __init__(self, ghost_limit: int) -> None:
        self._small = _Queue()
        self._main = _Queue()
        self._ghosts: OrderedDict[str, bool] = OrderedDict()  # key -> left main
        self._ghosts_small = 0  # ghosts that left the small queue
        self._ghost_limit = max(1, int(ghost_limit * self.GHOSTS))
        self._share = self.SMALL

    @property
    def small_share(self) -> float:
        return self._share

    def insert(self, node: Node) -> None:
        from_main = self._ghosts.pop(node.key, None)
        if from_main is None:
            node.main = False
            self._small.push(node)
            return
        # ARC's steps, in entries: a ghost from small grows small by
        # GROW * max(1, ghosts from main / ghosts from small), one from main
        # shrinks it by max(1, the inverse) (both counts include this key).
        small = self._ghosts_small
        main = len(self._ghosts) + 1 - small
        count = self._small.length + self._main.length + 1
        if from_main:
            step = max(1.0, small / main) / count
            self._share = max(self.SMALL_MIN, self._share - step)
            node.hits += 1  # += : a racing get may have counted one already
        else:
            self._ghosts_small = small - 1
            step = self.GROW * max(1.0, main / small) / count
            self._share = min(self.SMALL_MAX, self._share + step)
        node.main = True
        self._main.push(node)

    def replace(self, old: Node, new: Node) -> None:
        """An overwrite: ``new`` takes ``old``'s place and counts as a hit."""
        new.main = old.main
        new.hits = old.hits + 1
        (self._main if old.main else self._small).swap(old, new)

    def remove(self, node: Node) -> None:
        (self._main if node.main else self._small).unlink(node)

    def evicted(self, node: Node) -> None:
        """``node`` was chosen by ``victim`` (not expired): unlink, keep a ghost."""
        self.remove(node)
        ghosts = self._ghosts
        ghosts[node.key] = node.main
        if not node.main:
            self._ghosts_small += 1
        if len(ghosts) > self._ghost_limit and not ghosts.popitem(last=False)[1]:
            self._ghosts_small -= 1

    def forget(self, key: str) -> None:
        """``key`` was deleted: drop its ghost, if any."""
        if self._ghosts.pop(key, None) is False:
            self._ghosts_small -= 1

    def clear(self) -> None:
        self._small.clear()
        self._main.clear()
        self._ghosts.clear()
        self._ghosts_small = 0
        self._share = self.SMALL

    def victim(self, now: float, protect: Node, limit: int) -> tuple[Node, bool]:
        """Return the next entry to evict and whether it is expired.

        ``protect`` (the entry being written) is never chosen unless expired.
        After ``limit`` steps the next candidate is taken whatever its hits,
        so hits racing with the scan cannot keep it going.
        """
        small, main = self._small, self._main
        while True:
            first = small.root.next
            if first is protect:  # an overwrite or the newest: skip it
                first = first.next
            oldest = main.root.next
            if oldest is protect:
                oldest = oldest.next
            if first is not small.root and (
                oldest is main.root
                or small.length >= self._share * (small.length + main.length)
            ):
                if first.expires_at <= now:
                    return first, True
                if first.hits < self.PROMOTE or limit <= 0:
                    return first, False
                small.unlink(first)
                first.hits = 0
                first.main = True
                main.push(first)
            elif oldest is main.root:
                raise RuntimeError("nothing to evict but the entry being written")
            else:
                if oldest.expires_at <= now:
                    return oldest, True
                hits = oldest.hits
                if hits <= 0 or limit <= 0:
                    return oldest, False
                main.unlink(oldest)
                oldest.hits = min(hits, self.MAX_HITS) - 1
                main.push(oldest)
            limit -= 1

    def nodes(self) -> list[Node]:
        """Every node, small queue first (for invariant checks)."""
        for node in self._small.nodes():
            assert not node.main
        for node in self._main.nodes():
            assert node.main
        assert self._ghosts_small == sum(not m for m in self._ghosts.values())
        assert len(self._ghosts) <= self._ghost_limit
        return self._small.nodes() + self._main.nodes()

    def ghosts(self) -> list[str]:
        return list(self._ghosts)


class Sieve:
    """SIEVE: one FIFO and a hand that walks from old to new, clearing hits
    and stopping at the first node without any (or at an expired one). Each
    step either stops or clears what a hit paid for: amortized O(1)."""

    __slots__ = ("_hand", "_queue")

    def __init__(self, ghost_limit: int = 0) -> None:
        self._queue = _Queue()
        self._hand = self._queue.root  # at root: start from the oldest entry

    def insert(self, node: Node) -> None:
        self._queue.push(node)

    def replace(self, old: Node, new: Node) -> None:
        new.hits = old.hits + 1
        self._queue.swap(old, new)
        if self._hand is old:
            self._hand = new

    def remove(self, node: Node) -> None:
        if self._hand is node:
            self._hand = node.next
        self._queue.unlink(node)

    evicted = remove

    def forget(self, key: str) -> None:
        pass

    def clear(self) -> None:
        self._queue.clear()
        self._hand = self._queue.root

    def victim(self, now: float, protect: Node, limit: int) -> tuple[Node, bool]:
        root = self._queue.root
        node = self._hand
        while True:
            if node is root:
                node = root.next
                continue
            if node.expires_at <= now:
                expired = True
                break
            if node is not protect:
                if node.hits <= 0 or limit <= 0:
                    expired = False
                    break
                node.hits = 0
            node = node.next
            limit -= 1
        # The hand moves on past the victim, and past the entry being written
        # when that is the newest: SIEVE inserts after it evicts, so the hand
        # must not land on the new entry (that made it the next victim).
        after = node.next
        self._hand = protect.next if after is protect else after
        return node, expired

    def nodes(self) -> list[Node]:
        return self._queue.nodes()

    def ghosts(self) -> list[str]:
        return []


POLICIES: Final = {"s3fifo": S3Fifo, "sieve": Sieve}
