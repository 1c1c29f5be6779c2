"""The envelope: what freshcache stores in Redis for one key.

Layout (big-endian)::

    header  40 bytes  struct ">BBBBdddf8s":
            magic 0xFC, format version 2, codec id (1 json, 2 msgpack, 3 pickle),
            flags (bit0 zlib, bit1 type-tagged, bit2 has tags), created_at,
            fresh_until (inf: never stale), stale_until (end of the stale
            window; -inf: none), delta (float32 seconds), key check
            (blake2b-64 of the key)
    check   the integrity check of header and body, one of:
             4 bytes  CRC-32 (zlib.crc32) of header || body, without a secret
            32 bytes  HMAC-SHA256(secret, len(key) || key || header || body),
                      with one (always for pickle)
    body    iff flag bit2: a 2-byte length and the entry's invalidation tags,
            UTF-8, joined by 0x1F; then the payload: the serialized value,
            zlib-compressed when flag bit0 is set

Which check an envelope carries comes from the reader's configuration, never
from the bytes. Format version 1 (before the checksum: no check without a
secret) reads as ``Undecodable("format")``, a miss, like any version but 2.

``decode`` never raises and never runs code: anything it cannot trust comes
back as ``Undecodable(reason)``. Pickle bytes are unpickled only after the MAC
checks out, compared with ``hmac.compare_digest``.

JSON (the default) and msgpack keep exact types through compact tags (rules
in ``typetags``); flag bit1 says a payload holds tags, so an untagged one
decodes with one ``orjson.loads`` and no walk. Dataclasses and pydantic
models decode as a dict of their fields (``revival.make_reviver`` revives).

Pickle (protocol 5) keeps whatever pickle keeps, cycles included, and needs a
secret. The CRC-32 catches accidental corruption (every single-bit error and
every burst of up to 32 bits; other damage escapes with odds of about 2**-32),
truncation and foreign bytes; the key check catches cross-talk between keys.
Integrity against deliberate tampering needs a secret (then every codec signs
and the HMAC replaces the CRC): anyone who can write to Redis can compute a
CRC.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
import zlib
from collections.abc import Callable
from typing import Final, Literal, NamedTuple

import orjson

from freshcache._core.codec.typetags import from_plain, to_plain
from freshcache._core.entry import ALWAYS, Entry
from freshcache.errors import SerializationError, ValueTooLargeError

__all__ = ["HEADER", "REASONS", "Codec", "Header", "Undecodable", "peek"]

HEADER: Final = struct.Struct(">BBBBdddf8s")
MAGIC: Final = 0xFC
FORMAT_VERSION: Final = 2
COMPRESSED: Final = 1
TAGGED: Final = 2
HAS_TAGS: Final = 4
TAG_SEPARATOR: Final = "\x1f"
MAC_SIZE: Final = 32
CRC: Final = struct.Struct(">I")  # the check without a secret
# a compressed payload may inflate to at most this many times max_value_bytes
MAX_EXPANSION: Final = 8
CODEC_IDS: Final = {"json": 1, "msgpack": 2, "pickle": 3}
REASONS: Final = (
    "truncated", "magic", "format", "codec", "key_check",
    "checksum", "signature", "decompress", "payload", "oversize",
)  # fmt: skip


class Undecodable(NamedTuple):
    """Bytes ``decode`` would not trust; returned, never raised.

    ``reason`` is one of ``REASONS`` ("oversize": longer than
    ``max_value_bytes``, not even parsed).
    """

    reason: str


_R = {reason: Undecodable(reason) for reason in REASONS}


# -- key check ----------------------------------------------------------------

_KEY_CHECKS: dict[str, bytes] = {}  # memo: hot keys skip the hash on every hit
_KEY_CHECKS_MAX: Final = 4096


def key_check(key: str) -> bytes:
    """blake2b-64 of the key's UTF-8 bytes."""
    check = _KEY_CHECKS.get(key)
    if check is None:
        raw = key.encode("utf-8", "surrogatepass")
        check = hashlib.blake2b(raw, digest_size=8).digest()
        if len(_KEY_CHECKS) >= _KEY_CHECKS_MAX:
            _KEY_CHECKS.clear()
        _KEY_CHECKS[key] = check
    return check


_new_entry: Final = tuple.__new__  # Entry(...) minus one Python frame, on every hit


def _no_ext(code: int, data: bytes) -> object:
    raise ValueError("unexpected msgpack ext type")


# -- the codec ----------------------------------------------------------------


class Codec:
    """Encodes entries into envelopes and back; immutable and thread-safe."""

    __slots__ = (
        "_cid", "_dumps", "_hmac", "_json", "_loads", "_max_raw",
        "_max_value_bytes", "_offset", "_threshold", "serializer",
    )  # fmt: skip

    def __init__(
        self,
        serializer: Literal["json", "msgpack", "pickle"] = "json",
        *,
        secret: bytes | str | None = None,
        compress_threshold: int | None = 4096,
        max_value_bytes: int = 1 << 20,
    ) -> None:
        if serializer not in CODEC_IDS:
            raise ValueError(
                f"serializer must be json, msgpack or pickle, not {serializer!r}"
            )
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and not isinstance(secret, bytes):
            raise TypeError("secret must be bytes, str or None")
        if secret is not None and not secret:
            raise ValueError("secret must not be empty")
        if serializer == "pickle" and secret is None:
            raise ValueError("pickle needs secret= for HMAC signing")
        if compress_threshold is not None and (
            isinstance(compress_threshold, bool)
            or not isinstance(compress_threshold, int)
            or compress_threshold < 0
        ):
            raise ValueError("compress_threshold must be a non-negative int or None")
        if (
            isinstance(max_value_bytes, bool)
            or not isinstance(max_value_bytes, int)
            or max_value_bytes <= HEADER.size + MAC_SIZE
        ):
            raise ValueError(
                f"max_value_bytes must be an int above {HEADER.size + MAC_SIZE}"
            )
        self.serializer = serializer
        self._cid = CODEC_IDS[serializer]
        self._json = serializer == "json"
        self._threshold = compress_threshold
        self._max_value_bytes = max_value_bytes
        self._max_raw = max_value_bytes * MAX_EXPANSION
        self._hmac = (
            None if secret is None else hmac.new(secret, digestmod=hashlib.sha256)
        )
        self._offset = HEADER.size + (CRC.size if secret is None else MAC_SIZE)
        self._dumps: Callable[[object], tuple[bytes, int]]
        self._loads: Callable[[bytes], object]
        if serializer == "json":
            self._dumps, self._loads = _json_dumps, orjson.loads
        elif serializer == "msgpack":
            self._dumps, self._loads = _msgpack_pair()
        else:
            self._dumps, self._loads = _pickle_dumps, _pickle_loads

    @property
    def max_value_bytes(self) -> int:
        """The longest envelope stored or read; a longer one is refused."""
        return self._max_value_bytes

    @property
    def signed(self) -> bool:
        """True when every envelope carries an HMAC."""
        return self._hmac is not None

    def encode(self, key: str, entry: Entry) -> bytes:
        """The envelope for ``entry`` under ``key``.

        Raises ``SerializationError`` for a value the codec cannot store
        exactly, ``ValueTooLargeError`` past ``max_value_bytes``.
        """
        try:
            payload, flags = self._dumps(entry.value)
        except SerializationError:
            raise
        except Exception as exc:  # unpicklable, RecursionError, surrogates...
            raise SerializationError(f"{type(exc).__name__}: {exc}") from exc
        if len(payload) > self._max_raw:
            raise ValueTooLargeError(f"serialized value is {len(payload)} bytes")
        if self._threshold is not None and len(payload) > self._threshold:
            packed = zlib.compress(payload, 1)
            if len(packed) < len(payload):
                payload, flags = packed, flags | COMPRESSED
        if entry.tags:
            block = _tag_block(entry.tags)
            payload, flags = block + payload, flags | HAS_TAGS
        header = HEADER.pack(
            MAGIC, FORMAT_VERSION, self._cid, flags,
            entry.created_at, entry.fresh_until, entry.stale_until, entry.delta,
            key_check(key),
        )  # fmt: skip
        size = self._offset + len(payload)
        if size > self._max_value_bytes:
            raise ValueTooLargeError(
                f"encoded value is {size} bytes, over {self._max_value_bytes}"
            )
        if self._hmac is None:
            check = CRC.pack(zlib.crc32(payload, zlib.crc32(header)))
        else:
            check = self._mac(key, header, payload)
        return b"".join((header, check, payload))

    def decode(self, key: str, data: bytes) -> Entry | Undecodable:
        """The entry in ``data``, or why it cannot be trusted. Never raises."""
        try:
            n = len(data)
            if n < HEADER.size:
                return _R["magic"] if n and data[0] != MAGIC else _R["truncated"]
            if n > self._max_value_bytes:
                return _R["oversize"]
            magic, version, cid, flags, created, fresh, stale, delta, check = (
                HEADER.unpack_from(data)
            )
            if magic != MAGIC:
                return _R["magic"]
            if version != FORMAT_VERSION or flags & ~(COMPRESSED | TAGGED | HAS_TAGS):
                return _R["format"]
            if cid != self._cid:
                return _R["codec"]
            if check != (_KEY_CHECKS.get(key) or key_check(key)):
                return _R["key_check"]
            if n <= self._offset:  # no room for a payload
                return _R["truncated"]
            # the check runs once, over views of header and body (no copy)
            view = memoryview(data)
            if self._hmac is None:
                crc = zlib.crc32(view[self._offset :], zlib.crc32(view[: HEADER.size]))
                if crc != CRC.unpack_from(data, HEADER.size)[0]:
                    return _R["checksum"]
            else:
                mac = self._mac(key, view[: HEADER.size], view[self._offset :])
                if not hmac.compare_digest(mac, view[HEADER.size : self._offset]):
                    return _R["signature"]
            # one copy of the body: orjson parses bytes faster than a view,
            # and the copy costs ~1 % of parsing at 100 KB
            payload = data[self._offset :]
            tags: tuple[str, ...] = ()
            if flags & HAS_TAGS:
                size = int.from_bytes(payload[:2], "big")
                if len(payload) < 2 + size:
                    return _R["truncated"]
                tags = tuple(payload[2 : 2 + size].decode().split(TAG_SEPARATOR))
                payload = payload[2 + size :]
                if not payload:
                    return _R["truncated"]
            if flags & COMPRESSED:
                inflated = self._inflate(payload)
                if inflated is None:
                    return _R["decompress"]
                payload = inflated
            if self._json and payload[-1] != 0x0A:  # JSON payloads end in "\n"
                return _R["truncated"]
            value = self._loads(payload)
            if flags & TAGGED:
                value = from_plain(value)
            return _new_entry(
                Entry, (value, created, fresh, delta, tags, stale, ALWAYS)
            )
        except Exception:
            return _R["payload"]

    def _mac(
        self, key: str, header: bytes | memoryview, payload: bytes | memoryview
    ) -> bytes:
        assert self._hmac is not None
        raw = key.encode("utf-8", "surrogatepass")
        mac = self._hmac.copy()
        mac.update(len(raw).to_bytes(4, "big"))
        mac.update(raw)
        mac.update(header)
        mac.update(payload)
        return mac.digest()

    def _inflate(self, blob: bytes) -> bytes | None:
        """Decompress at most ``_max_raw`` bytes; None for bombs and bad streams."""
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(blob, self._max_raw)
        except zlib.error:
            return None
        if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
            return None
        return out


def _tag_block(tags: tuple[str, ...]) -> bytes:
    raw = TAG_SEPARATOR.join(tags).encode()
    if len(raw) > 0xFFFF or any(not t or TAG_SEPARATOR in t for t in tags):
        raise SerializationError("tags must be non-empty and at most 64 KiB in all")
    return len(raw).to_bytes(2, "big") + raw


def _json_dumps(value: object) -> tuple[bytes, int]:
    plain, tagged = to_plain(value, json=True)
    # the newline lets decode tell a truncated number ("12" of "123") apart
    payload = orjson.dumps(plain, option=orjson.OPT_APPEND_NEWLINE)
    return payload, TAGGED if tagged else 0


def _msgpack_pair() -> tuple[
    Callable[[object], tuple[bytes, int]], Callable[[bytes], object]
]:
    try:
        import msgpack
    except ImportError as exc:
        raise ImportError(
            "serializer='msgpack' needs msgpack: pip install 'freshcache[msgpack]'"
        ) from exc
    packer_options = {"use_bin_type": True, "datetime": False, "strict_types": True}

    def dumps(value: object) -> tuple[bytes, int]:
        plain, tagged = to_plain(value, json=False)
        return msgpack.packb(plain, **packer_options), TAGGED if tagged else 0

    def loads(payload: bytes) -> object:
        return msgpack.unpackb(
            payload, raw=False, strict_map_key=False, use_list=True, ext_hook=_no_ext
        )

    return dumps, loads


def _pickle_dumps(value: object) -> tuple[bytes, int]:
    return pickle.dumps(value, protocol=5), 0


def _pickle_loads(payload: bytes) -> object:
    # looked up at call time so tests can prove it is never reached unsigned
    return pickle.loads(payload)


# -- reading a header without the configuration (diagnostics) -----------------

CODEC_NAMES: Final = {cid: name for name, cid in CODEC_IDS.items()}


class Header(NamedTuple):
    """An envelope's header as ``peek`` reads it, without the value.

    ``check`` says what vouches for it: ``"crc-32"`` (the checksum matches),
    or ``"unverified"`` (signed with a secret the reader does not have, or
    damaged). ``tags`` is None when they could not be read."""

    codec: str
    compressed: bool
    created_at: float
    fresh_until: float
    stale_until: float
    delta: float
    size: int
    check: str
    tags: tuple[str, ...] | None


def peek(data: bytes) -> Header | Undecodable:
    """The header of the envelope ``data``, for a diagnostic (``inspect``):
    no key check, no secret, no payload decoded. Never raises."""
    try:
        if len(data) < HEADER.size:
            return _R["magic"] if data and data[0] != MAGIC else _R["truncated"]
        magic, version, cid, flags, created, fresh, stale, delta, _ = (
            HEADER.unpack_from(data)
        )
        if magic != MAGIC:
            return _R["magic"]
        if version != FORMAT_VERSION or flags & ~(COMPRESSED | TAGGED | HAS_TAGS):
            return _R["format"]
        if cid not in CODEC_NAMES:
            return _R["codec"]
        start = HEADER.size + CRC.size
        check, offset = "unverified", HEADER.size + MAC_SIZE
        if len(data) > start:
            crc = zlib.crc32(data[start:], zlib.crc32(data[: HEADER.size]))
            if crc == CRC.unpack_from(data, HEADER.size)[0]:
                check, offset = "crc-32", start
        tags: tuple[str, ...] | None = ()
        if flags & HAS_TAGS:
            size = int.from_bytes(data[offset : offset + 2], "big")
            raw = data[offset + 2 : offset + 2 + size]
            try:
                text = raw.decode() if len(raw) == size else None
            except UnicodeDecodeError:
                text = None
            tags = None if text is None else tuple(text.split(TAG_SEPARATOR))
        return Header(
            CODEC_NAMES[cid], bool(flags & COMPRESSED), created, fresh, stale,
            delta, len(data), check, tags,
        )  # fmt: skip
    except Exception:
        return _R["payload"]
