"""freshcache's Lua scripts and key layout, unchanged, on a real Redis Cluster.

freshcache's Redis store runs on a cluster through a ``redis+cluster://`` URL
(``tests/_async/test_cluster.py`` tests the whole cache there). This module
pins, underneath, what its cluster client runs: the scripts of
`freshcache._core.lua` and the key names of `freshcache._core.layout`,
called as the store calls them, through redis-py's own ``RedisCluster``
on a private three-primary cluster (`tests/cluster.py`), with keys spread
over every node.

What a cluster client of the store must do differently (redis-py 8.1, seen
here): a cluster pipeline refuses ``pipe.delete(key, lease)`` (several keys)
and ``script(..., client=pipe)`` (EVALSHA is blocked), so the fan-out below
sends ``DEL key lease`` and ``EVALSHA`` through ``execute_command``, with the
scripts loaded on every primary first; ``MGET`` across slots raises.

Left out: the scripts that reach every live version of a prefix (``LIVE``,
``LIVE_VERSIONS``, ``INVALIDATE``, ``BUMP``). They build other versions' key
names inside Redis and touch many slots, which a cluster refuses; on a
cluster the store runs their work as single-slot steps (docs/architecture.md,
"Redis Cluster").
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.crc import key_slot

from freshcache._core import lua as _lua
from freshcache._core.keys import KeyBuilder
from freshcache._core.layout import epoch_key, lease_key, pending_key, tag_key

try:
    from tests import cluster as cluster_module
    from tests.cluster import ClusterInfo, own_redis_cluster
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import cluster as cluster_module  # type: ignore[no-redef]
    from cluster import ClusterInfo, own_redis_cluster  # type: ignore[no-redef]

try:
    from tests.servers import RedisProcess
except ImportError:
    from servers import RedisProcess  # type: ignore[no-redef]

KEYS = 200
LEASE_PX = 30_000
VALUE_PX = 60_000
LONG_PX = 600_000
SHORT_PX = 30_000


@pytest.fixture(scope="module")
def binaries(redis_url: str) -> None:
    """Skip (fail in CI) without Redis; ``redis_url`` applies that policy."""
    missing = [b for b in ("redis-server", "redis-cli") if shutil.which(b) is None]
    if missing:
        message = f"{' and '.join(missing)} not on PATH: no Redis Cluster to test"
        if os.environ.get("FRESHCACHE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{message}; FRESHCACHE_REQUIRE_SERVERS=1", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def cluster(binaries: None) -> Iterator[ClusterInfo]:
    """A private three-primary cluster shared by the module's tests."""
    with own_redis_cluster(nodes=3) as info:
        yield info


@pytest.fixture(scope="module")
def client(cluster: ClusterInfo) -> Iterator[RedisCluster]:
    rc = RedisCluster(
        startup_nodes=cluster.startup_nodes, socket_timeout=5, socket_connect_timeout=5
    )
    try:
        yield rc
    finally:
        rc.close()


@pytest.fixture(scope="module")
def nodes(cluster: ClusterInfo) -> Iterator[dict[int, redis.Redis]]:
    """A plain client per node, by port: what is really stored where."""
    direct = {port: redis.Redis(host="127.0.0.1", port=port) for port in cluster.ports}
    try:
        yield direct
    finally:
        for node in direct.values():
            node.close()


@dataclass(frozen=True)
class Scripts:
    fill: Script
    put: Script
    release: Script
    register: Script


@pytest.fixture(scope="module")
def scripts(client: RedisCluster) -> Scripts:
    return Scripts(
        fill=client.register_script(_lua.FILL),
        put=client.register_script(_lua.PUT),
        release=client.register_script(_lua.RELEASE),
        register=client.register_script(_lua.REGISTER),
    )


@pytest.fixture
def builder(key_prefix: str) -> KeyBuilder:
    """Keys of this test only (the cluster is shared by the module)."""
    return KeyBuilder(key_prefix, "v1")


@pytest.fixture
def keys(builder: KeyBuilder, client: RedisCluster, cluster: ClusterInfo) -> list[str]:
    """200 data keys over every node of the cluster."""
    made = [builder.key("user", i) for i in range(KEYS)]
    owners = {_port(client, key) for key in made}
    assert owners == set(cluster.ports), "the keys must reach every node"
    return made


def _port(client: RedisCluster, key: str) -> int:
    """The port of the primary that owns ``key``'s slot, per the client's map."""
    node = client.get_node_from_key(key)
    assert node is not None
    port: int = node.port
    return port


def _token() -> str:
    return secrets.token_hex(16)  # as AsyncRedisStore.acquire


def _acquire(client: RedisCluster, key: str) -> str:
    """The store's ``acquire``: SET lease token NX PX; the lease must be free."""
    token = _token()
    assert client.set(lease_key(key), token, px=LEASE_PX, nx=True)
    return token


def _my_keys(nodes: dict[int, redis.Redis], prefix: str) -> dict[int, set[bytes]]:
    """Every key of this test (data, lease, tag, epoch) on each node."""
    found: dict[int, set[bytes]] = {}
    for port, node in nodes.items():
        found[port] = {k for k in node.scan_iter(count=1000) if prefix.encode() in k}
    return found


# -- key layout --------------------------------------------------------------


def test_lease_lands_with_its_data_key_on_every_node(
    client: RedisCluster,
    nodes: dict[int, redis.Redis],
    keys: list[str],
    key_prefix: str,
) -> None:
    for key in keys:
        assert "{" not in key
        assert "}" not in key
        assert key_slot(key.encode()) == key_slot(lease_key(key).encode())
        assert key_slot(key.encode()) == key_slot(pending_key(key).encode())
    for key in keys[:20]:  # the server computes the same slots as redis-py
        assert client.cluster_keyslot(key) == key_slot(key.encode())
        assert client.cluster_keyslot(lease_key(key)) == key_slot(key.encode())

    for key in keys:
        client.set(key, b"v")
        client.set(lease_key(key), _token(), px=LEASE_PX)
    stored = _my_keys(nodes, key_prefix)
    assert all(stored.values()), "every node holds some of the keys"
    assert sum(len(found) for found in stored.values()) == 2 * KEYS
    for key in keys:
        # Both names in one command on the owning node: CROSSSLOT or MOVED if not.
        assert nodes[_port(client, key)].exists(key, lease_key(key)) == 2
    assert len({key_slot(k.encode()) for k in keys}) > KEYS // 2

    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("DEL", key, lease_key(key))
    assert pipe.execute() == [2] * KEYS


# -- the lease protocol -------------------------------------------------------


def test_fill_stores_only_with_the_live_lease(
    client: RedisCluster, scripts: Scripts, keys: list[str]
) -> None:
    for key in keys:
        lease = lease_key(key)
        token = _acquire(client, key)
        assert client.set(lease, _token(), px=LEASE_PX, nx=True) is None  # held

        assert (
            scripts.fill(
                keys=[key, lease, pending_key(key)], args=[_token(), b"x", VALUE_PX]
            )
            == 0
        )
        assert client.exists(key) == 0
        assert client.get(lease) == token.encode()

        assert (
            scripts.fill(
                keys=[key, lease, pending_key(key)], args=[token, b"v1", VALUE_PX]
            )
            == 1
        )
        assert client.get(key) == b"v1"
        assert 0 < client.pttl(key) <= VALUE_PX
        assert client.exists(lease) == 0

        # The lease is spent: the same token cannot fill twice.
        assert (
            scripts.fill(
                keys=[key, lease, pending_key(key)], args=[token, b"v2", VALUE_PX]
            )
            == 0
        )
        assert client.get(key) == b"v1"


def test_invalidation_revokes_a_lease_taken_before_it(
    client: RedisCluster, scripts: Scripts, keys: list[str]
) -> None:
    for key in keys:
        client.set(key, b"old", px=VALUE_PX)
    tokens = {key: _acquire(client, key) for key in keys}  # loaders start

    pipe = client.pipeline(transaction=False)  # AsyncRedisStore.invalidate
    for key in keys:
        pipe.execute_command("DEL", key, lease_key(key))
    assert pipe.execute() == [2] * KEYS

    for key, token in tokens.items():  # the loaders finish, with stale values
        lease = lease_key(key)
        assert (
            scripts.fill(
                keys=[key, lease, pending_key(key)], args=[token, b"stale", VALUE_PX]
            )
            == 0
        )
        assert client.exists(key, lease) == 0


def test_put_revokes_the_lease_and_release_needs_the_token(
    client: RedisCluster, scripts: Scripts, keys: list[str]
) -> None:
    for key in keys:
        lease = lease_key(key)
        token = _acquire(client, key)
        assert scripts.put(keys=[key, lease], args=[b"direct", VALUE_PX]) == 1
        assert client.get(key) == b"direct"
        assert 0 < client.pttl(key) <= VALUE_PX
        assert client.exists(lease) == 0
        assert (
            scripts.fill(
                keys=[key, lease, pending_key(key)], args=[token, b"stale", VALUE_PX]
            )
            == 0
        )
        assert client.get(key) == b"direct"

        token = _acquire(client, key)
        assert scripts.release(keys=[lease], args=[_token()]) == 0
        assert client.get(lease) == token.encode()
        assert scripts.release(keys=[lease], args=[token]) == 1
        assert client.exists(lease) == 0
        assert scripts.release(keys=[lease], args=[token]) == 0
        assert client.get(key) == b"direct"  # releasing never touches the value


def test_px_zero_stores_without_expiry(
    client: RedisCluster, scripts: Scripts, keys: list[str]
) -> None:
    for index, key in enumerate(keys):
        lease = lease_key(key)
        if index % 2:
            token = _acquire(client, key)
            assert (
                scripts.fill(keys=[key, lease, pending_key(key)], args=[token, b"v", 0])
                == 1
            )
        else:
            client.set(lease, _token(), px=LEASE_PX)
            assert scripts.put(keys=[key, lease], args=[b"v", 0]) == 1
        assert client.get(key) == b"v"
        assert client.pttl(key) == -1
        assert client.exists(lease) == 0


# -- tags ----------------------------------------------------------------------


def test_tag_set_never_expires_before_its_members(
    client: RedisCluster, scripts: Scripts, builder: KeyBuilder, keys: list[str]
) -> None:
    head = builder.head
    grows, stays, persists = (tag_key(head, f"team:{n}") for n in (1, 2, 3))
    # Members from every node go into one set that lives in the tag's own slot.
    assert {_port(client, k) for k in keys} - {_port(client, stays)}

    # Short first, then longer: the TTL grows to the longest member.
    assert scripts.register(keys=[grows], args=[keys[0], SHORT_PX]) == 1
    assert 0 < client.pttl(grows) <= SHORT_PX
    assert scripts.register(keys=[grows], args=[keys[1], LONG_PX]) == 1
    assert client.pttl(grows) > LONG_PX - 60_000

    # Long first, then many short ones from every slot: the TTL never shrinks.
    assert scripts.register(keys=[stays], args=[keys[0], LONG_PX]) == 1
    for key in keys[1:]:
        assert scripts.register(keys=[stays], args=[key, SHORT_PX]) == 1
    assert client.pttl(stays) > LONG_PX - 60_000
    assert client.smembers(stays) == {k.encode() for k in keys}

    # A member without expiry makes the set persistent, for good.
    assert scripts.register(keys=[persists], args=[keys[0], SHORT_PX]) == 1
    assert scripts.register(keys=[persists], args=[keys[1], 0]) == 1
    assert client.pttl(persists) == -1
    assert scripts.register(keys=[persists], args=[keys[2], LONG_PX]) == 1
    assert client.pttl(persists) == -1

    for tag, count in ((grows, 2), (stays, KEYS), (persists, 3)):
        taken = client.smembers(tag)
        assert sorted(m.decode() for m in taken) == sorted(keys[:count])


def test_tag_invalidation_fans_out_to_every_node(
    client: RedisCluster,
    scripts: Scripts,
    nodes: dict[int, redis.Redis],
    builder: KeyBuilder,
    keys: list[str],
    key_prefix: str,
) -> None:
    head = builder.head
    team, org = tag_key(head, "team:7"), tag_key(head, "org:1")

    # The store's cluster client must load its scripts on every primary before
    # pipelining EVALSHA (a cluster pipeline cannot load them itself).
    for source in (_lua.REGISTER, _lua.FILL):
        sha = client.script_load(source)
        assert all(node.script_exists(sha) == [True] for node in nodes.values())

    tokens: dict[str, str] = {}
    for key in keys:  # fill path: lease, register every tag, then fill
        tokens[key] = _acquire(client, key)
        pipe = client.pipeline(transaction=False)
        for tag in (team, org):
            pipe.execute_command("EVALSHA", scripts.register.sha, 1, tag, key, VALUE_PX)
        assert pipe.execute() == [1, 1]
    half = keys[: KEYS // 2]
    for key in half:  # half of them filled, the other half's loaders still run
        lease = lease_key(key)
        assert scripts.fill(
            keys=[key, lease, pending_key(key)], args=[tokens[key], b"v", VALUE_PX]
        )
        tokens[key] = _acquire(client, key)  # and being refreshed again
    assert client.smembers(org) == {k.encode() for k in keys}

    # AsyncRedisStore.invalidate_tags(["team:7"]): epoch, read the members,
    # delete them with their leases (per slot), then remove exactly those.
    assert client.incr(epoch_key(head)) == 1
    members = sorted(m.decode() for m in client.smembers(team))
    assert members == sorted(keys)
    pipe = client.pipeline(transaction=False)
    for member in members:
        pipe.execute_command("DEL", member, lease_key(member))
    counts = pipe.execute()
    assert sum(counts) == len(half) * 2 + (KEYS - len(half))
    assert client.srem(team, *members) == len(members)
    assert client.exists(team) == 0

    for key, token in tokens.items():  # every loader's fill now comes too late
        lease = lease_key(key)
        assert (
            scripts.fill(
                keys=[key, lease, pending_key(key)], args=[token, b"stale", VALUE_PX]
            )
            == 0
        )

    # Gone from every node: only the epoch and the other tag's set remain.
    left = _my_keys(nodes, key_prefix)
    assert left[_port(client, epoch_key(head))] >= {epoch_key(head).encode()}
    assert set().union(*left.values()) == {epoch_key(head).encode(), org.encode()}
    assert client.smembers(org) != set()


# -- the cluster helper itself -----------------------------------------------


def _gone(started: list[RedisProcess]) -> None:
    assert started
    for node in started:
        assert node.process.poll() is not None, f"node {node.port} still runs"
        assert not node.tmpdir.exists()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[RedisProcess]:
    """Every node ``own_redis_cluster`` starts from now on."""
    nodes: list[RedisProcess] = []
    start = cluster_module._start_node

    def recording(*args: Any) -> RedisProcess:
        node = start(*args)
        nodes.append(node)
        return node

    monkeypatch.setattr(cluster_module, "_start_node", recording)
    return nodes


class _BoomError(Exception):
    pass


def _use_then_fail(started: list[RedisProcess]) -> None:
    with own_redis_cluster() as info:
        assert [node.port for node in started] == info.ports
        rc = RedisCluster(startup_nodes=info.startup_nodes)
        try:
            assert rc.ping()
        finally:
            rc.close()
        raise _BoomError


@pytest.mark.usefixtures("binaries")
def test_own_redis_cluster_stops_everything_after_an_error_inside(
    started: list[RedisProcess],
) -> None:
    with pytest.raises(_BoomError):
        _use_then_fail(started)
    _gone(started)


@pytest.mark.usefixtures("binaries")
def test_own_redis_cluster_stops_everything_when_create_fails(
    started: list[RedisProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    which = shutil.which
    false = which("false")
    assert false is not None

    def no_cli(name: str) -> str | None:
        return false if name == "redis-cli" else which(name)

    monkeypatch.setattr(cluster_module.shutil, "which", no_cli)
    with (
        pytest.raises(RuntimeError, match="cluster create failed"),
        own_redis_cluster(),
    ):
        pytest.fail("the cluster cannot be created")
    assert len(started) == 3
    _gone(started)
