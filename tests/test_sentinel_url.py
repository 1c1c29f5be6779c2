"""``redis+sentinel://`` URLs: what they say, and clear errors (that never
quote the password) for what they must not say. No server needed."""

from __future__ import annotations

import pytest

from freshcache import Cache
from freshcache._sync.redis.connect import Endpoint
from freshcache._sync.redis.sentinel import parse_sentinel_url

SECRET = "pw-url-7f3a"


def test_the_parts_go_where_they_belong() -> None:
    url = (
        f"redis+sentinel://app:{SECRET}@10.0.0.1:26380,[::1],h3/mymaster/3"
        f"?sentinel_password=s{SECRET}&client_name=web&invalidation_replicas=2"
    )
    kwargs, place = parse_sentinel_url(url)
    assert place.addresses == (("10.0.0.1", 26380), ("::1", 26379), ("h3", 26379))
    assert place.service == "mymaster"
    assert place.invalidation_replicas == 2
    assert place.settings() == {"password": f"s{SECRET}"}  # the sentinels'
    assert kwargs["username"] == "app"
    assert kwargs["password"] == SECRET  # the nodes'
    assert kwargs["db"] == 3
    assert kwargs["client_name"] == "web"
    assert "host" not in kwargs


def test_defaults() -> None:
    kwargs, place = parse_sentinel_url("redis+sentinel://h/svc")
    assert place.addresses == (("h", 26379),)
    assert place.invalidation_replicas == 1
    assert place.settings() == {}
    assert kwargs["db"] == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"redis+sentinel://:{SECRET}@/svc", "no sentinel address"),
        (f"redis+sentinel://:{SECRET}@h:x/svc", "not a number"),
        (f"redis+sentinel://:{SECRET}@h:70000/svc", "out of range"),
        (f"redis+sentinel://:{SECRET}@h", "/service_name"),
        (f"redis+sentinel://:{SECRET}@h/svc/0/x", "/service_name"),
        (f"redis+sentinel://:{SECRET}@h/svc/x", "database"),
        (f"redis+sentinel://:{SECRET}@h/svc?invalidation_replicas=-1", "0 to"),
        (f"redis+sentinel://:{SECRET}@[::1/svc", "IPv6"),
    ],
)
def test_bad_urls_are_refused_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Endpoint(url)
    assert SECRET not in str(caught.value)


def test_repr_never_shows_a_password() -> None:
    endpoint = Endpoint(
        f"redis+sentinel://:{SECRET}@h1,h2:1/svc/2?sentinel_password=q{SECRET}"
    )
    assert endpoint.where == "sentinel h1:26379,h2:1 svc/2"
    assert SECRET not in repr(endpoint) + repr(endpoint.sentinel)


def test_tls_sentinel_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="rediss\\+sentinel"):
        Cache(f"rediss+sentinel://:{SECRET}@h/svc")
