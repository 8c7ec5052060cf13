"""The connection to Redis: the client, key naming and unavailability as an error."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.exceptions as redis_errors
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from memory_service import metrics
from memory_service.store.base import StoreUnavailableError
from memory_service.store.redis.scripts import Script

T = TypeVar("T")

# Errors meaning "Redis cannot serve right now", as opposed to a bug.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # Also authentication failures and a loading replica.
    redis_errors.TimeoutError,
    redis_errors.ClusterError,  # Cluster down, master down.
    redis_errors.RedisClusterException,  # No reachable seed, slot not covered.
    redis_errors.TryAgainError,  # Resharding.
    redis_errors.ReadOnlyError,  # Writing to a replica after a failover.
    redis_errors.OutOfMemoryError,  # maxmemory reached with noeviction.
    OSError,
)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def fields(raw: list[bytes]) -> dict[bytes, bytes]:
    """A stream entry's flat [field, value, ...] list (as a script returns it) as a dict."""
    return dict(zip(raw[::2], raw[1::2], strict=True))


@dataclass(frozen=True)
class RedisOptions:
    """How to reach Redis and how patiently."""

    url: str = "redis://127.0.0.1:6379/0"
    cluster_nodes: tuple[str, ...] = ()
    password: str | None = None
    timeout_seconds: float = 1.0
    retries: int = 2
    key_prefix: str = "attune"


class RedisLink:
    """One client to Redis, the names of the store's keys, and calls that
    raise StoreUnavailableError while Redis cannot be reached."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.where = describe(options)
        self.client: Redis | RedisCluster = redis_client(options)
        self.namespaces_key = f"{options.key_prefix}:namespaces"

    def key(self, namespace: str, name: str) -> str:
        return f"{self.options.key_prefix}:{{{namespace}}}:{name}"

    def pattern_key(self, namespace: str, pattern_id: str) -> str:
        return self.key(namespace, f"pattern:{pattern_id}")

    def sealed_key(self, namespace: str, pattern_id: str, owner: str) -> str:
        """The owner's SENSITIVE pattern under the id (the owner's length in
        bytes first, as Lua's #: no owner and id pair names another's key)."""
        return self.key(namespace, f"sealed:{len(owner.encode())}:{owner}:{pattern_id}")

    def slot_keys(self, namespace: str, pattern_id: str, owner: str) -> list[str]:
        """The keys the put and delete scripts take: shared hash, log, epoch,
        the owner's sealed hash, the id's owners set."""
        return [
            self.pattern_key(namespace, pattern_id),
            self.key(namespace, "log"),
            self.key(namespace, "epoch"),
            self.sealed_key(namespace, pattern_id, owner),
            self.key(namespace, f"owners:{pattern_id}"),
        ]

    async def call(self, operation: str, doing: str, call: Awaitable[T]) -> T:
        """Awaits a Redis call; unreachability becomes StoreUnavailableError.

        `operation` is a fixed name of the call site (the metrics' label);
        `doing` says what for, in messages (it may name a namespace or id).
        """
        counted = metrics.redis_operation(operation)
        counted.calls.inc()
        try:
            return await call
        except UNAVAILABLE_ERRORS as error:
            counted.errors.inc()
            detail = str(error) or type(error).__name__
            raise StoreUnavailableError(
                f"the pattern store (Redis at {self.where}) is unavailable while {doing}: {detail}"
            ) from error
        except Exception:
            counted.errors.inc()  # Refused by Redis (a script error, a wrong type): a bug.
            raise

    async def script(
        self, operation: str, doing: str, script: Script, keys: list[str], args: list[Any]
    ) -> Any:
        """EVALSHA, or EVAL where the node does not have the script yet.

        EVAL goes to the node owning the keys and caches the script there;
        redis-py's own fallback (SCRIPT LOAD) goes to every primary of a
        cluster, so it fails while any one of them is down.
        """

        async def call() -> Any:
            client = cast(Redis, self.client)  # Same script commands on both clients.
            try:
                return await cast(
                    Awaitable[Any], client.evalsha(script.sha, len(keys), *keys, *args)
                )
            except redis_errors.NoScriptError:
                return await cast(Awaitable[Any], client.eval(script.text, len(keys), *keys, *args))

        return await self.call(operation, doing, call())

    async def namespaces(self) -> list[str]:
        """Every namespace ever written."""
        members = await self.call(
            "list_namespaces",
            "listing namespaces",
            cast(Awaitable[set[bytes]], self.client.smembers(self.namespaces_key)),
        )
        return sorted(text(member) for member in members)

    async def close(self) -> None:
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await self.client.aclose()


def redis_client(options: RedisOptions) -> Redis | RedisCluster:
    """A client with short timeouts and redis-py's retry with jittered backoff."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), options.retries)
    common: dict[str, Any] = {
        "socket_timeout": options.timeout_seconds,
        "socket_connect_timeout": options.timeout_seconds,
        "retry": retry,
        "health_check_interval": 30,
    }
    if options.password is not None:
        common["password"] = options.password
    if options.cluster_nodes:
        seeds = [ClusterNode(*_host_port(node)) for node in options.cluster_nodes]
        return RedisCluster(startup_nodes=seeds, **common)
    return Redis.from_url(options.url, **common)


def _host_port(node: str) -> tuple[str, int]:
    host, separator, port = node.strip().rpartition(":")
    if not separator or not host or not port.isdigit():
        raise ValueError(f"Redis cluster node {node!r} is not host:port")
    return host.strip("[]"), int(port)


def describe(options: RedisOptions) -> str:
    """Where Redis is, without credentials, for messages."""
    if options.cluster_nodes:
        return "cluster " + ",".join(node.strip() for node in options.cluster_nodes)
    scheme, _, rest = options.url.partition("://")
    address = rest.partition("?")[0].rpartition("@")[2]  # No user, password or options.
    return f"{scheme}://{address}" if rest else "(an unparsable URL)"
