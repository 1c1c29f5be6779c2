"""A Redis whose users get exactly the ACL rules docs/security.md documents.

``acl_server()`` starts a private ``redis-server`` whose ``default`` user can
only manage users and read the ACL log (what the tests' set-up needs);
``make_user(server, prefix, ...)`` runs the documented ``ACL SETUSER`` lines
for ``prefix`` and returns a URL connecting as that user; ``refusals`` reads
what Redis refused that user (its ACL LOG entries).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

try:
    from tests.servers import RedisProcess, own_redis_server
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    from servers import RedisProcess, own_redis_server  # type: ignore[no-redef]

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
DOC_PREFIX = "app"  # the prefix the documented lines are written for
PASSWORD = "s3cret-for-tests"
BASE = "Every Redis cache"
FEATURES = (BASE, "Tags", "Namespace versions", "Write-behind")
_LINE = re.compile(r"ACL SETUSER freshcache ((?:[^`|\\]|\\\|)+)")


def documented() -> dict[str, list[str]]:
    """The rules of each ``ACL SETUSER freshcache`` line in docs/security.md:
    a code block's line under its ``###`` heading (its first words), a table
    row's under the row's first cell."""
    found: dict[str, list[str]] = {}
    heading = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("### "):
            heading = line[4:].split(" (")[0].strip()
        elif line.startswith("ACL SETUSER freshcache "):
            found[heading] = line.split()[3:]
        elif line.startswith("| ") and (match := _LINE.search(line)):
            cell = line.split(" | ")[0].lstrip("| ").strip()
            found[cell] = match.group(1).replace("\\|", "|").split()
    return found


def rules_for(prefix: str, rules: Sequence[str]) -> list[str]:
    """Documented rules rewritten for ``prefix`` and the tests' password."""
    out = []
    for rule in rules:
        if rule.startswith(">"):
            rule = ">" + PASSWORD
        elif rule[:1] in "~&":
            for head in (DOC_PREFIX + ":", "{" + DOC_PREFIX + ":"):
                if rule[1:].startswith(head):
                    rule = (
                        rule[0]
                        + head.replace(DOC_PREFIX, prefix)
                        + rule[1 + len(head) :]
                    )
        out.append(rule)
    return out


# The default user: manage users and read their refusals, nothing else (no
# key, no channel, no other command).
ADMIN_ONLY = ("on", "nopass", "resetkeys", "resetchannels", "-@all", "+ping",
              "+acl|setuser", "+acl|deluser", "+acl|log")  # fmt: skip


@contextmanager
def acl_server() -> Iterator[RedisProcess]:
    with own_redis_server("--user", "default", *ADMIN_ONLY) as server:
        yield server


def admin(server: RedisProcess) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def make_user(
    server: RedisProcess,
    prefix: str,
    features: Sequence[str] = FEATURES,
    *,
    without: Sequence[str] = (),
) -> str:
    """A user of ``prefix`` with the documented lines of ``features`` (in
    that order; ``without``: these rules taken away after); its URL."""
    name = f"fc-{prefix}-{uuid.uuid4().hex[:6]}"
    lines = documented()
    with admin(server) as client:
        for feature in features:
            client.execute_command(
                "ACL", "SETUSER", name, *rules_for(prefix, lines[feature])
            )
        if without:
            client.execute_command("ACL", "SETUSER", name, *without)
    return f"redis://{name}:{PASSWORD}@127.0.0.1:{server.port}/0"


def user_of(url: str) -> str:
    return url.split("//", 1)[1].split(":", 1)[0]


def refusals(server: RedisProcess, url: str) -> list[str]:
    """What Redis refused the user of ``url``: ``reason:object`` per ACL LOG
    entry (``command:evalsha``, ``key:...``, ``channel:...``)."""
    name = user_of(url)
    with admin(server) as client:
        entries = client.acl_log(count=1000)
    found = []
    for fields in entries:
        if fields.get("username") == name:
            found.append(f"{fields['reason']}:{fields['object']}")
    return found
