"""The estimate of the Redis server's clock (pure logic)."""

from __future__ import annotations

from freshcache._core.clock import ServerTime


def test_the_offset_is_the_server_time_minus_the_midpoint_of_the_round_trip() -> None:
    server = ServerTime()
    assert server.offset == 0.0  # before any sample: this process's clock
    server.sample(sent=1000.0, server=1600.1, round_trip=0.2)
    assert abs(server.offset - 600.0) < 1e-9  # 1600.1 - (1000.0 + 0.1)


def test_the_shortest_round_trip_of_the_last_few_counts() -> None:
    server = ServerTime()
    server.sample(sent=0.0, server=10.5, round_trip=1.0)  # offset 10, +-0.5
    server.sample(sent=5.0, server=15.05, round_trip=0.1)  # offset 10.0, +-0.05
    server.sample(sent=9.0, server=20.0, round_trip=0.8)  # offset 10.6
    assert abs(server.offset - 10.0) < 1e-9
    # The local clock stepped back by 30 s: once the precise sample is
    # older than the last KEPT, the new offset counts.
    for i in range(ServerTime.KEPT):
        server.sample(sent=100.0 + i, server=130.0 + i + 0.1, round_trip=0.2)
    assert abs(server.offset - 30.0) < 1e-9


def test_a_negative_round_trip_is_ignored() -> None:
    server = ServerTime()
    server.sample(sent=0.0, server=5.0, round_trip=-1.0)
    assert server.offset == 0.0
