"""A Redis Cluster URL, the cluster's error classes, and what is refused on one.

No server: a cluster cache makes its client on its first command, so these
build caches on ports nothing listens on.
"""

from __future__ import annotations

import pytest
from redis.exceptions import (
    AskError,
    ClusterCrossSlotError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MovedError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from freshcache import MISS, AsyncCache, Cache, StoreError
from freshcache._async.redis.connect import Endpoint as AsyncEndpoint
from freshcache._async.redis.store import classify, cluster_error
from freshcache._sync.redis.connect import Endpoint
from freshcache.errors import ConfigStoreError, TransientStoreError

URL = "redis+cluster://user:s3cret-pw@127.0.0.1:1,127.0.0.1:2,[::1]:3/"


@pytest.mark.parametrize("endpoint_class", [Endpoint, AsyncEndpoint])
def test_the_url_names_every_startup_node_and_hides_the_password(
    endpoint_class: type[Endpoint],
) -> None:
    endpoint = endpoint_class(URL)
    assert endpoint.cluster
    assert endpoint.nodes == (("127.0.0.1", 1), ("127.0.0.1", 2), ("::1", 3))
    assert "s3cret" not in repr(endpoint)
    assert "s3cret" not in endpoint.where
    assert repr(endpoint) == "Endpoint(cluster 127.0.0.1:1,127.0.0.1:2,::1:3)"
    assert not endpoint_class("redis://127.0.0.1:6379/0").cluster


@pytest.mark.parametrize("endpoint_class", [Endpoint, AsyncEndpoint])
def test_plain_connections_go_to_each_startup_node_in_turn(
    endpoint_class: type[Endpoint],
) -> None:
    """The bus listens on one node and moves to the next when it reconnects."""
    endpoint = endpoint_class(URL)
    seen = []
    for _ in range(6):
        pool = endpoint.pool(size=1, timeout=1.0)
        seen.append((pool.connection_kwargs["host"], pool.connection_kwargs["port"]))
        assert pool.connection_kwargs["password"] == "s3cret-pw"
        assert pool.connection_kwargs["username"] == "user"
    assert set(seen) == set(endpoint.nodes)
    assert seen[:3] == seen[3:]  # a rotation


def test_a_cluster_client_gets_the_settings_and_no_retries() -> None:
    """The asyncio client connects on its first command, so it can be looked at."""
    from redis.asyncio.connection import SSLConnection

    client = AsyncEndpoint("rediss+cluster://u:pw@127.0.0.1:1/").cluster_client(
        size=3, timeout=0.5
    )
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("u", "pw")
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["max_connections"] == 3
    assert not kwargs["decode_responses"]
    assert issubclass(kwargs["connection_class"], SSLConnection)
    assert client.retry.get_retries() == 0


@pytest.mark.parametrize(
    ("url", "replicas"),
    [
        ("redis+cluster://127.0.0.1:1/", None),  # 1 where a primary has one
        ("redis+cluster://127.0.0.1:1/?invalidation_replicas=2", 2),
        ("redis+cluster://127.0.0.1:1?invalidation_replicas=0", 0),
        ("redis+cluster://127.0.0.1:1/0?client_name=w&invalidation_replicas=1", 1),
    ],
)
def test_invalidation_replicas_is_freshcaches_own(
    url: str, replicas: int | None
) -> None:
    """Read from the URL, and never handed to redis-py's client (which would
    refuse it), while the other options still are."""
    endpoint = AsyncEndpoint(url)
    assert endpoint.cluster_replicas == replicas
    assert Endpoint(url).cluster_replicas == replicas
    assert AsyncEndpoint(endpoint).cluster_replicas == replicas
    kwargs = endpoint.cluster_client(size=1, timeout=0.5).connection_kwargs
    assert "invalidation_replicas" not in kwargs
    if "client_name" in url:
        assert kwargs["client_name"] == "w"


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:1/?invalidation_replicas=-1",
        "redis+cluster://127.0.0.1:1/?invalidation_replicas=one",
        "redis+cluster://127.0.0.1:1/?invalidation_replicas=17",
        "redis+cluster://127.0.0.1:1/3",  # a database
        "redis+cluster://127.0.0.1:notaport/",
        "redis+cluster://127.0.0.1:1,:2/",
        "redis+cluster://127.0.0.1:70000/",
    ],
)
def test_a_bad_cluster_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)cluster"):
        Endpoint(url)


def test_a_bad_cluster_url_never_shows_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        Endpoint("redis+cluster://:hunter2@127.0.0.1:1/5")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        (MovedError("1234 127.0.0.1:7001"), "moved"),
        (AskError("1234 127.0.0.1:7001"), "ask"),
        (TryAgainError("TRYAGAIN Multiple keys request during rehashing"), "tryagain"),
        (ClusterDownError("CLUSTERDOWN The cluster is down"), "clusterdown"),
        (ResponseError("MASTERDOWN Link with MASTER is down"), "clusterdown"),
        (
            ReadOnlyError("READONLY You can't write against a read only replica."),
            "readonly",
        ),
        (ClusterError("TTL exhausted."), "redirects"),
        (SlotNotCoveredError("slot 12 is not covered"), "unreachable"),
    ],
)
def test_cluster_errors_are_transient_and_named(exc: Exception, name: str) -> None:
    assert cluster_error(exc) == name
    assert isinstance(classify(exc), TransientStoreError)


def test_a_cross_slot_command_is_a_loud_error() -> None:
    exc = ClusterCrossSlotError()
    assert cluster_error(exc) == "crossslot"
    assert isinstance(classify(exc), ConfigStoreError)
    reply = ResponseError("CROSSSLOT Keys in request don't hash to the same slot")
    assert cluster_error(reply) == "crossslot"
    assert isinstance(classify(reply), ConfigStoreError)


def test_other_errors_are_not_cluster_errors() -> None:
    assert cluster_error(ConnectionError("refused")) is None
    assert cluster_error(ResponseError("WRONGTYPE Operation against a key")) is None
    assert isinstance(classify(ResponseError("WRONGTYPE x")), ConfigStoreError)


def test_a_cache_builds_while_the_cluster_is_down_and_fails_open() -> None:
    """Nothing listens on the nodes: the cache builds (the client is made on
    the first command), a read is a miss, a load still answers."""
    with Cache("redis+cluster://127.0.0.1:1/", timeout=0.2) as cache:
        assert cache.get_or_load("k", lambda: 7) == 7
        errors = cache.stats().errors
        assert errors.get("transient", 0) >= 1
        assert errors.get("cluster:unreachable", 0) >= 1


def test_write_behind_builds_on_a_cluster_and_raises_while_it_is_down() -> None:
    """Write-behind runs on a cluster (tests/_async/test_writebehind_cluster.py);
    with no node answering, ``put`` raises rather than report a write."""
    with Cache("redis+cluster://127.0.0.1:1/") as cache:
        wb = cache.write_behind(timeout=0.2)
        with pytest.raises(StoreError):
            wb.put("k", 1)
        assert cache.get("k") is MISS
        wb.close(flush=False)


def test_the_async_cache_takes_the_url_too() -> None:
    cache = AsyncCache("rediss+cluster://127.0.0.1:1,127.0.0.1:2/")
    assert "cluster" in repr(cache.engine.l2.endpoint)
