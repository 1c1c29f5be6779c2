"""The live view's pure parts: snapshots (and bytes that are not one),
totals over processes, lease tokens, pending marks, envelope headers read
without the configuration, and what the CLI prints. No Redis."""

from __future__ import annotations

import orjson
import pytest

from freshcache import (
    CacheStats,
    KeyInfo,
    L1View,
    Lookups,
    NamespaceStats,
    WriteBehindStats,
)
from freshcache._core.codec.envelope import Codec, Undecodable, peek
from freshcache._core.entry import Entry
from freshcache._inproc.live import (
    LiveStats,
    ProcessStats,
    encode_snapshot,
    lease_holder,
    lease_token,
    parse_snapshot,
    parse_view,
    total,
    write_mark_time,
)
from freshcache.cli import _live_format as fmt


def _stats(hits: int, misses: int, ns: str = "user", **extra: object) -> CacheStats:
    lookups = Lookups(hits, misses)
    return CacheStats(
        lookups=lookups,
        l1=lookups,
        namespaces={ns: NamespaceStats(lookups, lookups, Lookups())},
        **extra,  # type: ignore[arg-type]
    )


def _process(name: str, stats: CacheStats) -> ProcessStats:
    return ProcessStats(
        process=name, started_at=100.0, published_at=160.0, library_version="0.1.0",
        head="app:v1:", period=5.0, stats=stats, l1_entries=3, bus_connected=True,
        watermark_age=0.02, bus_lag=None,
    )  # fmt: skip


def test_a_snapshot_round_trips() -> None:
    stats = _stats(
        7, 3, errors={"transient": 2}, counts={"bus_connect": 1},
        evictions={"l1:entries": 4}, gauges={"g": 1.5, "never": float("inf")},
        pending_invalidations=1, oldest_pending_seconds=0.5,
    )  # fmt: skip
    snapshot = _process("h:1:abc", stats)
    parsed = parse_snapshot(encode_snapshot(snapshot))
    assert parsed is not None
    assert parsed.stats.gauges == {"g": 1.5}  # JSON has no infinity
    assert parsed == _process("h:1:abc", stats.__class__(**{
        **{f: getattr(stats, f) for f in stats.__dataclass_fields__},
        "gauges": {"g": 1.5},
    }))  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        b"", b"\xff\xfe", b"null", b"[]", b"{}", b'{"v": 2}',
        b'{"v": 1, "process": 3, "library": "x", "head": "h"}',
        b'{"v": 1, "process": "p", "library": "x", "head": "h", "started": "no"}',
    ],
)  # fmt: skip
def test_anything_else_is_unreadable_never_an_exception(data: bytes) -> None:
    assert parse_snapshot(data) is None


def test_wrong_types_inside_the_stats_are_unreadable() -> None:
    good = orjson.loads(encode_snapshot(_process("p", _stats(1, 1))))
    for path, bad in [
        (("stats", "lookups", "hits"), -1),
        (("stats", "lookups", "hits"), "1"),
        (("stats", "errors"), [1]),
        (("stats", "namespaces"), {"user": 3}),
        (("stats", "gauges"), {"g": "x"}),
        (("watermark_age",), "old"),
        (("l1_entries",), True),
    ]:
        doc = orjson.loads(orjson.dumps(good))
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = bad
        assert parse_snapshot(orjson.dumps(doc)) is None, path


def test_the_total_sums_counters_and_keeps_the_worst_gauge() -> None:
    a = _process("a", _stats(8, 2, errors={"transient": 1}, gauges={"lag": 1.0}))
    b = _process("b", _stats(1, 1, ns="team", errors={"transient": 2, "acl": 1},
                             gauges={"lag": 3.0}))  # fmt: skip
    summed = total([a, b])
    assert summed.lookups == Lookups(9, 3)
    assert set(summed.namespaces) == {"team", "user"}
    assert summed.errors == {"transient": 3, "acl": 1}
    assert summed.gauges == {"lag": 3.0}
    assert total([]) == CacheStats()


def test_lease_tokens_name_their_holder_and_time() -> None:
    token = lease_token("host:42:abc", 1000.25, "ff00")
    assert lease_holder(token) == ("host:42:abc", 1000.25)
    assert lease_holder(token.encode()) == ("host:42:abc", 1000.25)
    assert lease_holder("0123456789abcdef") is None  # an older release's token
    assert lease_holder("a/b/c") is None
    assert write_mark_time("1700000000123-4") == 1700000000.123
    assert write_mark_time("~placeholder") is None
    assert write_mark_time(b"\xff") is None


def test_peek_reads_a_header_without_the_configuration() -> None:
    entry = Entry("v", 10.0, 20.0, 0.5, ("t1", "t2"), 25.0)
    plain = Codec().encode("k", entry)
    header = peek(plain)
    assert not isinstance(header, Undecodable)
    assert (header.codec, header.check, header.tags) == ("json", "crc-32", ("t1", "t2"))
    assert (header.created_at, header.fresh_until, header.stale_until) == (10, 20, 25)
    assert header.size == len(plain)
    signed = Codec("msgpack", secret=b"s").encode("k", entry)
    header = peek(signed)
    assert not isinstance(header, Undecodable)
    assert (header.codec, header.check, header.tags) == (
        "msgpack", "unverified", ("t1", "t2"),
    )  # fmt: skip
    assert peek(b"\x00junk") == Undecodable("magic")
    assert peek(plain[:10]) == Undecodable("truncated")
    assert peek(b"\xfc\x09" + plain[2:]) == Undecodable("format")


def test_replies_from_other_processes_are_checked() -> None:
    assert parse_view(b'{"present": true, "fresh": true, "tags": ["a"]}').present
    for junk in (b"", b"[]", b'{"present": 1}', b'{"present": true, "tags": [1]}',
                 b'{"present": true, "expires_in": "soon"}'):  # fmt: skip
        assert parse_view(junk) == L1View(False, error="unreadable reply")


def test_throughput_and_figures() -> None:
    q = WriteBehindStats(backlog=5, pending=1, lag=0.5, applied=100, redelivered=0,
                         dead_lettered=0)  # fmt: skip
    later = WriteBehindStats(5, 1, 0.5, 130, 0, 0)
    assert fmt.throughput({"q": q}, {"q": later, "new": q}, 2.0) == {
        "q": 15.0, "new": None,
    }  # fmt: skip
    assert fmt.throughput({"q": q}, {"q": later}, 0) == {"q": None}
    assert fmt.errors_text({}) == "0"
    assert fmt.errors_text({"a": 1, "b": 5, "c": 2, "d": 1}) == (
        "9 (b 5, c 2, a 1, ...)"
    )
    assert fmt.rate(Lookups()) == "-"
    assert fmt.rate(Lookups(1, 3)) == "25.0%"
    assert fmt.millis(None) == "-"
    assert fmt.millis(0.0012) == "1.2 ms"


def test_the_json_and_the_rows_agree() -> None:
    a = _process("a", _stats(8, 2))
    live = LiveStats([a], total([a]), unreadable=["x"], read_at=170.0)
    data = fmt.stats_json(live, {})
    assert data["processes"][0]["stats"]["lookups"]["hit_rate"] == 0.8
    assert data["unreadable"] == ["x"]
    row = fmt.process_row(a, 170.0)
    assert row[:4] == ["a", "70s", "10", "80.0%"]
    assert fmt.total_row(live)[0] == "total (1 process)"


def test_inspect_text_never_holds_the_value() -> None:
    info = KeyInfo("user:1", "app:v1:user:1", "user", value={"secret": 1},
                   read_at=100.0)  # fmt: skip
    text = "\n".join(fmt.inspect_lines(info))
    assert "secret" not in text
    assert "in redis       no" in text
    assert info.to_dict()["value"] == {"secret": 1}  # asked for (with_value)
    failed = KeyInfo("user:1", "app:v1:user:1", "user", error="Redis down")
    assert "value" not in failed.to_dict()
    assert fmt.inspect_lines(failed)[-1] == "error          Redis down"
