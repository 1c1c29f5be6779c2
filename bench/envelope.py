"""``python -m bench envelope``: what the envelope's integrity check costs.

Two tables, in-process, best of several interleaved repeats (``_timing``):

* the candidate checks over a 40-byte header and a payload of 100 B, 2 KB and
  100 KB (random bytes): CRC-32 (``zlib.crc32``, two calls, no
  concatenation), blake2b-64 (``hashlib``) and HMAC-SHA256 (what
  ``secret=`` costs);
* ``Codec.encode`` and ``Codec.decode`` of values whose JSON is about those
  sizes, for json and msgpack, with the default options (so the 100 KB one
  is zlib-compressed). ``--against <checkout>`` also loads that checkout's
  ``envelope.py`` and times it in the same loops, interleaved, so that a
  before/after comparison shares the machine's noise.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import os
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._timing import best_per_call, sync_loop
from freshcache._core.codec.envelope import Codec
from freshcache._core.entry import Entry

SIZES = {"100 B": 100, "2 KB": 2048, "100 KB": 100 * 1024}


def _value(size: int) -> dict[str, Any]:
    """A dict of rows whose JSON is about ``size`` bytes (varied strings)."""
    rng = random.Random(size)
    rows: list[dict[str, Any]] = []
    value: dict[str, Any] = {"id": 1, "rows": rows}
    while len(repr(value)) < size:
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
        rows.append({"n": rng.randrange(10**6), "s": word})
    return value


def _checks(size: int) -> dict[str, Callable[[Any], Any]]:
    header = os.urandom(40)
    payload = os.urandom(size)
    mac = hmac.new(b"k" * 32, digestmod=hashlib.sha256)

    def crc32(_: Any) -> int:
        return zlib.crc32(payload, zlib.crc32(header))

    def blake2b(_: Any) -> bytes:
        digest = hashlib.blake2b(header, digest_size=8)
        digest.update(payload)
        return digest.digest()

    def hmac_sha256(_: Any) -> bytes:
        m = mac.copy()
        m.update(header)
        m.update(payload)
        return m.digest()

    return {"crc32": crc32, "blake2b-64": blake2b, "hmac-sha256": hmac_sha256}


def _codec_class(checkout: str) -> Any:
    """``Codec`` from another checkout's envelope.py (its other modules are
    this checkout's)."""
    path = Path(checkout) / "src/freshcache/_core/codec/envelope.py"
    spec = importlib.util.spec_from_file_location("_envelope_against", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Codec


def run(*, quick: bool = False, against: str | None = None) -> int:
    repeats, min_seconds = (3, 0.02) if quick else (7, 0.1)
    print("Integrity checks over a 40-byte header + payload (best of repeats)")
    print(f"  {'payload':<8} {'check':<12} {'per call':>10} {'GB/s':>6}")
    for label, size in SIZES.items():
        loops = {name: sync_loop(fn, None) for name, fn in _checks(size).items()}
        best = best_per_call(loops, repeats=repeats, min_seconds=min_seconds)
        for name, seconds in best.items():
            rate = (size + 40) / seconds / 1e9
            print(f"  {label:<8} {name:<12} {seconds * 1e6:>8.2f}us {rate:>6.2f}")
    print()
    print("Codec.encode / Codec.decode, default options (best of repeats)")
    kinds: dict[str, Any] = {"": Codec}
    if against is not None:
        kinds = {"before ": _codec_class(against), "after ": Codec}
    print(f"  {'value':<8} {'codec':<15} {'envelope':>9} {'encode':>10} {'decode':>10}")
    for label, size in SIZES.items():
        value = _value(size)
        for serializer in ("json", "msgpack"):
            loops = {}
            sizes = {}
            for kind, cls in kinds.items():
                codec = cls(serializer)
                entry = Entry(value, 1.0)
                data = codec.encode("app:v1:k", entry)
                assert codec.decode("app:v1:k", data) == entry
                sizes[kind] = len(data)
                loops[kind + "encode"] = sync_loop(
                    lambda e, c=codec: c.encode("app:v1:k", e), entry
                )
                loops[kind + "decode"] = sync_loop(
                    lambda d, c=codec: c.decode("app:v1:k", d), data
                )
            best = best_per_call(loops, repeats=repeats, min_seconds=min_seconds)
            for kind in kinds:
                name = f"{serializer} {kind}".strip()
                print(
                    f"  {label:<8} {name:<15} {sizes[kind]:>8}B "
                    f"{best[kind + 'encode'] * 1e6:>8.2f}us "
                    f"{best[kind + 'decode'] * 1e6:>8.2f}us"
                )
    return 0
