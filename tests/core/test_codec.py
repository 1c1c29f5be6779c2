"""The envelope: header, every way bytes fail to decode, limits, signatures."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import pickle
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freshcache._core.codec.envelope import (
    CRC,
    HEADER,
    MAX_EXPANSION,
    REASONS,
    Codec,
    Undecodable,
)
from freshcache._core.entry import Entry
from freshcache.errors import SerializationError, ValueTooLargeError

SECRET = b"test-secret-0123456789abcdef0123"
SERIALIZERS = ["json", "msgpack", "pickle"]
IDS = {"json": 1, "msgpack": 2, "pickle": 3}


def make(serializer: str, **options: Any) -> Codec:
    if serializer == "pickle":
        options.setdefault("secret", SECRET)
    return Codec(serializer, **options)  # type: ignore[arg-type]


def forge(payload: bytes, *, key: str = "k", flags: int = 0, codec: int = 1) -> bytes:
    """An unsigned envelope with a correct CRC: decode reaches the payload."""
    check = hashlib.blake2b(key.encode(), digest_size=8).digest()
    header = HEADER.pack(0xFC, 2, codec, flags, 1.0, math.inf, -math.inf, 0.0, check)
    return header + CRC.pack(zlib.crc32(header + payload)) + payload


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    ),
    max_leaves=15,
)


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_header_fields_round_trip(serializer: str) -> None:
    codec = make(serializer)
    entry = Entry({"x": 1}, 1_700_000_000.123456, math.inf, 0.25)
    data = codec.encode("app:user:1", entry)
    assert codec.decode("app:user:1", data) == entry
    assert HEADER.size == 40
    assert data[:3] == bytes([0xFC, 2, IDS[serializer]])
    check = hashlib.blake2b(b"app:user:1", digest_size=8).digest()
    assert data[32:40] == check
    if serializer != "pickle":  # unsigned: a CRC-32 of header and body
        assert data[40:44] == CRC.pack(zlib.crc32(data[:40] + data[44:]))
    windowed = Entry("v", 1.0, 10.0, 0.5, ("t",), stale_until=70.0)
    assert codec.decode("k", codec.encode("k", windowed)) == windowed
    # delta is a float32: kept to about 7 digits
    later = Entry(None, 5.5, 99.75, 0.1)
    decoded = codec.decode("k", codec.encode("k", later))
    assert isinstance(decoded, Entry)
    assert decoded[:3] == (None, 5.5, 99.75)
    assert decoded.delta == struct.unpack("f", struct.pack("f", 0.1))[0]


# -- decode: never raises, never trusts -----------------------------------


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize(
    "value", [12345, -0.0, "text", [1, (2,)], {"a": b"b"}, "x" * 9000]
)
def test_every_truncation_is_undecodable(serializer: str, value: object) -> None:
    codec = make(serializer, compress_threshold=100)
    data = codec.encode("k", Entry(value, 1.0))
    for length in range(len(data)):
        assert isinstance(codec.decode("k", data[:length]), Undecodable), length
    assert codec.decode("k", b"") == Undecodable("truncated")
    assert codec.decode("k", data[: HEADER.size]) == Undecodable("truncated")


def test_truncated_json_number_is_caught() -> None:
    codec = make("json")
    data = codec.encode("k", Entry(12345, 1.0))
    assert codec.decode("k", data[:-1]) == Undecodable("checksum")
    assert codec.decode("k", data[:-2]) == Undecodable("checksum")
    # behind the checksum, the terminator still refuses a cut number
    assert codec.decode("k", forge(b"1234")) == Undecodable("truncated")


@pytest.mark.parametrize("serializer", SERIALIZERS)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_are_undecodable(serializer: str, data: bytes) -> None:
    assert isinstance(make(serializer).decode("k", data), Undecodable)


@pytest.mark.parametrize("serializer", SERIALIZERS)
@settings(max_examples=200, deadline=None)
@given(value=values, position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_flipped_bits_never_raise(
    serializer: str, value: object, position: int, bit: int
) -> None:
    codec = make(serializer)
    data = bytearray(codec.encode("k", Entry(value, 1.0)))
    data[position % len(data)] ^= 1 << bit
    # every envelope carries a CRC-32 or an HMAC: no flip goes unnoticed
    assert isinstance(codec.decode("k", bytes(data)), Undecodable)


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_header_checks(serializer: str) -> None:
    codec = make(serializer)
    data = codec.encode("k", Entry([1], 1.0))

    def patched(offset: int, byte: int) -> bytes:
        return data[:offset] + bytes([byte]) + data[offset + 1 :]

    assert codec.decode("k", patched(0, 0x80)) == Undecodable("magic")
    assert codec.decode("k", b"\x80\x05") == Undecodable("magic")
    assert codec.decode("k", patched(1, 1)) == Undecodable("format")  # older
    assert codec.decode("k", patched(1, 3)) == Undecodable("format")
    assert codec.decode("k", patched(3, 8)) == Undecodable("format")  # unknown flag
    assert codec.decode("k", patched(2, 9)) == Undecodable("codec")
    assert codec.decode("other", data) == Undecodable("key_check")
    for junk in (None, "text", 3, "x" * 100):
        assert isinstance(codec.decode("k", junk), Undecodable)  # type: ignore[arg-type]
    assert set(REASONS) >= {"truncated", "magic", "format", "codec", "key_check"}


def test_codecs_do_not_read_each_others_bytes() -> None:
    codecs = {name: make(name) for name in SERIALIZERS}
    for writer in SERIALIZERS:
        data = codecs[writer].encode("k", Entry([1], 1.0))
        for reader in SERIALIZERS:
            if reader != writer:
                assert codecs[reader].decode("k", data) == Undecodable("codec")


def test_cross_talk_is_caught_for_many_keys() -> None:
    codec = make("json")
    encoded = {
        f"user:{i}": codec.encode(f"user:{i}", Entry(i, 1.0)) for i in range(5000)
    }
    for i in range(5000):
        assert codec.decode(f"user:{i}", encoded[f"user:{i}"]) == Entry(i, 1.0)
        assert codec.decode(f"user:{i + 1}", encoded[f"user:{i}"]) == Undecodable(
            "key_check"
        )


def test_forged_payloads_are_undecodable() -> None:
    codec = make("json")
    assert codec.decode("k", forge(b'{"!":"zz","v":1}\n', flags=2)) == Undecodable(
        "payload"
    )
    assert codec.decode("k", forge(b'{"!":"t","v":5}\n', flags=2)) == Undecodable(
        "payload"
    )
    assert codec.decode("k", forge(b"[" * 10**5 + b"]" * 10**5 + b"\n")) == Undecodable(
        "payload"
    )
    deep = b'{"!":"t","v":[' * 400 + b"]}" * 400 + b"\n"  # within orjson's limit
    assert codec.decode("k", forge(deep, flags=2)) == Undecodable("payload")
    # without the tagged flag, a tag-shaped dict is just a dict
    assert codec.decode("k", forge(b'{"!":"t","v":[]}\n')) == Entry(
        {"!": "t", "v": []}, 1.0
    )
    assert codec.decode("k", forge(b"\xff\n")) == Undecodable("payload")
    zone = b'{"!":"dtx","v":["2020-01-01T00:00:00","../../etc/passwd",0]}\n'
    assert codec.decode("k", forge(zone, flags=2)) == Undecodable("payload")
    huge = b'{"!":"td","v":[1e300,0,0]}\n'
    assert codec.decode("k", forge(huge, flags=2)) == Undecodable("payload")


# -- compression ----------------------------------------------------------


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_compression_threshold(serializer: str) -> None:
    codec = make(serializer, compress_threshold=1000)
    small = codec.encode("k", Entry("x" * 500, 1.0))
    assert small[3] & 1 == 0
    big = {"rows": [{"id": i, "name": "same name"} for i in range(500)]}
    data = codec.encode("k", Entry(big, 1.0))
    assert data[3] & 1 == 1
    assert len(data) < len(
        make(serializer, compress_threshold=None).encode("k", Entry(big, 1.0))
    )
    assert codec.decode("k", data) == Entry(big, 1.0)


def test_incompressible_payloads_stay_raw() -> None:
    codec = make("msgpack", compress_threshold=100)
    data = codec.encode("k", Entry(os.urandom(5000), 1.0))
    assert data[3] & 1 == 0


def test_decompression_bomb_is_refused() -> None:
    codec = make("json", max_value_bytes=4096)
    bomb = zlib.compress(b" " * (4096 * MAX_EXPANSION + 1) + b"1\n", 9)
    assert len(bomb) < 4096
    assert codec.decode("k", forge(bomb, flags=1)) == Undecodable("decompress")
    good = zlib.compress(b"[1]\n")
    assert codec.decode("k", forge(good, flags=1)) == Entry([1], 1.0)
    assert codec.decode("k", forge(good[:-3], flags=1)) == Undecodable("decompress")
    assert codec.decode("k", forge(good + b"junk", flags=1)) == Undecodable(
        "decompress"
    )
    assert codec.decode("k", forge(b"not zlib", flags=1)) == Undecodable("decompress")


# -- size limits ----------------------------------------------------------


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_oversize_values_raise(serializer: str) -> None:
    codec = make(serializer, max_value_bytes=1024, compress_threshold=None)
    with pytest.raises(ValueTooLargeError):
        codec.encode("k", Entry("x" * 2000, 1.0))
    assert issubclass(ValueTooLargeError, SerializationError)
    compressing = make(serializer, max_value_bytes=1024, compress_threshold=100)
    data = compressing.encode("k", Entry("x" * 2000, 1.0))
    assert compressing.decode("k", data) == Entry("x" * 2000, 1.0)
    with pytest.raises(ValueTooLargeError):  # inflates past the decode cap
        compressing.encode("k", Entry("x" * (1024 * MAX_EXPANSION + 1), 1.0))
    bigger = make(serializer, max_value_bytes=1 << 20, compress_threshold=None)
    stored = bigger.encode("k", Entry("x" * 2000, 1.0))
    assert codec.decode("k", stored) == Undecodable("oversize")


# -- pickle and signatures ------------------------------------------------


class _Evil:
    marker = ""

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def loads_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = pickle.loads

    def spy(data: bytes, /, **kwargs: Any) -> Any:
        calls.append(data)
        return real(data, **kwargs)

    monkeypatch.setattr(pickle, "loads", spy)
    return calls


def test_unsigned_or_foreign_pickles_never_reach_pickle_loads(
    tmp_path: Path, loads_calls: list[bytes]
) -> None:
    evil = _Evil()
    evil.marker = str(tmp_path / "pwned")
    codec = make("pickle")
    attacker = Codec("pickle", secret=b"attacker-secret")
    planted = attacker.encode("k", Entry(evil, 1.0))
    assert codec.decode("k", planted) == Undecodable("signature")
    raw = pickle.dumps(evil)
    assert codec.decode("k", raw) == Undecodable("magic")
    unsigned = forge(raw, codec=3)
    assert codec.decode("k", unsigned) in (
        Undecodable("signature"),
        Undecodable("truncated"),
    )
    assert codec.decode("k", forge(b"\x00" * 32 + raw, codec=3)) == Undecodable(
        "signature"
    )
    for other in ("json", "msgpack"):
        assert make(other).decode("k", planted) == Undecodable("codec")
    assert loads_calls == []
    assert not (tmp_path / "pwned").exists()
    # the control: a value we signed does reach pickle.loads
    assert codec.decode("k", codec.encode("k", Entry([1], 1.0))) == Entry([1], 1.0)
    assert len(loads_calls) == 1


def test_tampering_breaks_the_signature(
    loads_calls: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[int] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    codec = make("pickle")
    data = codec.encode("k", Entry({"a": 1}, 1.0, 50.0))
    for offset in (
        4,
        12,
        20,
        28,
        HEADER.size,
        HEADER.size + 31,
        HEADER.size + 32,
        len(data) - 1,
    ):
        tampered = bytearray(data)
        tampered[offset] ^= 0x01
        assert codec.decode("k", bytes(tampered)) == Undecodable("signature"), offset
    # a copy to another key, with the key check rewritten to match: the MAC has the key
    moved = data[:32] + hashlib.blake2b(b"victim", digest_size=8).digest() + data[40:]
    assert codec.decode("victim", moved) == Undecodable("signature")
    assert codec.decode("victim", data) == Undecodable("key_check")
    assert Codec("pickle", secret=b"other").decode("k", data) == Undecodable(
        "signature"
    )
    assert loads_calls == []
    assert compared


def test_a_secret_signs_json_too() -> None:
    codec = Codec("json", secret="a str secret works")
    assert codec.signed
    data = codec.encode("k", Entry([1, 2], 1.0))
    assert codec.decode("k", data) == Entry([1, 2], 1.0)
    tampered = data[:-3] + b"3" + data[-2:]
    assert codec.decode("k", tampered) == Undecodable("signature")
    assert make("json").decode("k", data) == Undecodable("checksum")  # MAC as CRC
    unsigned = make("json").encode("k", Entry(list(range(30)), 1.0))
    assert codec.decode("k", unsigned) == Undecodable("signature")  # no downgrade
    assert not make("json").signed


# -- construction ---------------------------------------------------------


def test_constructor_validates_options(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="pickle needs secret="):
        Codec("pickle")
    with pytest.raises(ValueError):
        Codec("yaml")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Codec(secret=b"")
    with pytest.raises(TypeError):
        Codec(secret=123)  # type: ignore[arg-type]
    for threshold in (-1, True, 1.5):
        with pytest.raises(ValueError):
            Codec(compress_threshold=threshold)  # type: ignore[arg-type]
    for limit in (0, 64, True, 1e6):
        with pytest.raises(ValueError):
            Codec(max_value_bytes=limit)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(ImportError, match=r"pip install 'freshcache\[msgpack\]'"):
        Codec("msgpack")
    assert "secret" not in repr(Codec("pickle", secret=SECRET))


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_tags_ride_in_the_envelope(serializer: str) -> None:
    codec = make(serializer)
    entry = Entry({"id": 1}, 1.0, 2.0, 0.5, ("team:7", "user:1", "é"))
    data = codec.encode("k", entry)
    assert codec.decode("k", data) == entry
    for cut in range(HEADER.size, len(data)):
        assert isinstance(codec.decode("k", data[:cut]), Undecodable)


@pytest.mark.parametrize("tags", [("",), ("a\x1fb",), ("x" * 70_000,)])
def test_bad_tags_are_not_cacheable(tags: tuple[str, ...]) -> None:
    with pytest.raises(SerializationError):
        make("json").encode("k", Entry(1, 1.0, tags=tags))
