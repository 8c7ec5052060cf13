"""The executor's client of the memory service.

Every call has a deadline: the configured one for its RPC, capped by what
remains of the caller's own. Idempotent RPCs retry on UNAVAILABLE through the
gRPC service config, never in hand-written loops. Every call, the background
readiness probe included, passes the circuit breaker (executor_service/
breaker.py): after consecutive failures it refuses calls locally with
UNAVAILABLE, so a hanging memory service stops costing every call a full
deadline, until a probe finds it back.

The channel balances with round_robin: `dns:///memory:50052` resolves every
A record of a headless Kubernetes Service, and calls spread over all the
replicas; the servers' maximum connection age makes the client re-resolve
now and then, so replicas added later get their share.

Every call gets a client span, and carries its W3C `traceparent`, from the
channel's tracing interceptors (servicekit/tracing.py); health probes do not.

Every call carries credentials, `authorization: Bearer <token>`: the
executor's own token (EXECUTOR_MEMORY_TOKEN), never a caller's. Neither a
token nor the header is ever logged.

A call made for a user (`on_behalf_of=<user id>`) carries the executor's
token and the metadata `attune-on-behalf-of: <user id>`: the memory service
then acts as that user (owner, SENSITIVE visibility, private context) within
the executor's own rights, provided the executor's tokens-file entry says
`delegate: true`. A stored pattern whose `owner` is set goes on its owner's
behalf.

Besides patterns, the client remembers a session's recent form choices in the
memory service's short-term context, one entry per template (`form:<id>`,
the answers as a JSON object). Remembering is best effort: it runs as a
background task the client tracks, so a run never waits for it, and shutdown
drains it, then cancels what is left before the channel closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.memory.breaker import BreakerOpenError, CircuitBreaker, Outcome, outcome_of
from executor_service.settings import ExecutorSettings
from executor_service.templates.models import Answer
from memory_service.patterns import MAX_CONTEXT_ID
from memory_service.security.identity import ON_BEHALF_OF_HEADER
from memory_service.servicekit.errors import error_reasons
from memory_service.servicekit.logging import request_id_var, trace_id_var
from memory_service.servicekit.tls import ClientTls
from memory_service.servicekit.tracing import client_interceptors, current_ids

log = logging.getLogger("attune.executor.memory")

Response = TypeVar("Response")

# SetContext is idempotent too: setting the same value again only restarts its TTL.
_IDEMPOTENT = (
    "StorePattern",
    "GetPattern",
    "SearchPatterns",
    "ListPatterns",
    "CountPatterns",
    "SetContext",
    "GetContext",
)

SERVICE_CONFIG = {
    # Spreads calls over every address the resolver returns (the A records of
    # `dns:///host:port`, or an `ipv4:` list); pick_first, gRPC's default,
    # would send all of them to the first.
    "loadBalancingConfig": [{"round_robin": {}}],
    # While most calls fail, retries stop (each failure costs a token, each
    # success earns a tenth, retries need over half of them): retries cover a
    # blip, and must not multiply the load on a service that is struggling.
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    "methodConfig": [
        {
            "name": [
                {"service": "attune.memory.v1.MemoryService", "method": m} for m in _IDEMPOTENT
            ],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}

# Codes meaning "the memory service could not answer", as opposed to "it
# answered no": only these send a search to the local fallback.
UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# Keepalive of the memory channel: a ping every 30 s even between calls, so a
# peer that vanished without a FIN (a killed node) is noticed within 40 s
# rather than at the next call's deadline. The memory servers accept pings
# every 10 s (servicekit.lifecycle.MIN_CLIENT_PING_INTERVAL_MS): no more often.
CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # 0: no cap on pings between data frames, or keepalive stops on an idle channel.
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after a memory restart instead of gRPC's default
    # backoff of up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)

# Codes meaning "it answered, but not to these credentials".
CREDENTIAL_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

# What an operator should check when the executor's own token is refused.
EXECUTOR_CREDENTIALS_HINT = (
    "the memory service refused the executor's own token: check EXECUTOR_MEMORY_TOKEN "
    "(or EXECUTOR_MEMORY_TOKEN_FILE) against the memory service's tokens file "
    "(a writer role on the executor's namespace)"
)

# What an operator should do when the memory service refuses the executor's
# calls on behalf of users.
DELEGATION_HINT = (
    "the memory service does not let the executor act on behalf of users: set "
    "`delegate: true` on the executor's entry in the memory service's tokens file"
)

AUTHORIZATION = "authorization"

# The memory service's rule for a context session id (and key). The executor
# checks it up front, so a bad session id is the caller's INVALID_ARGUMENT
# rather than a background write failing unseen.
MAX_SESSION_ID = MAX_CONTEXT_ID

# Context keys of remembered form choices: one entry per template.
CHOICES_KEY_PREFIX = "form:"


def choices_key(template_id: str) -> str:
    """The context key under which a session's choices for a template live."""
    return f"{CHOICES_KEY_PREFIX}{template_id}"


def encode_choices(choices: Mapping[str, Answer]) -> str | None:
    """The choices as a JSON object; None if a value has no JSON form.

    Validation rejects NaN, but a number question without bounds accepts
    infinity, which JSON cannot carry: such choices are not remembered rather
    than written as a value no other client could parse.
    """
    if any(isinstance(value, float) and not math.isfinite(value) for value in choices.values()):
        return None
    return json.dumps(dict(choices), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def decode_choices(text: str) -> dict[str, Answer] | None:
    """Choices read back from a context entry; None unless they have the shape
    encode_choices writes (the namespace's other writers can put anything there)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    choices: dict[str, Answer] = {}
    for question_id, answer in value.items():
        if isinstance(answer, bool | str):
            choices[question_id] = answer
        elif isinstance(answer, int | float) and math.isfinite(answer):
            # JSON has one number type; a form's numbers are floats.
            choices[question_id] = float(answer)
        elif isinstance(answer, list) and all(isinstance(item, str) for item in answer):
            choices[question_id] = list(answer)
        else:
            return None
    return choices


def caller_authorization(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str, ...]:
    """The `authorization` values a caller sent, to pass through as they are.

    Every value is kept, malformed or repeated: judging credentials is the
    memory service's job, and it answers UNAUTHENTICATED precisely.
    """
    return tuple(
        value
        for key, value in metadata or ()
        if key.lower() == AUTHORIZATION and isinstance(value, str)
    )


class MemoryClient:
    """One channel to the memory service, and the last outcome seen on it."""

    def __init__(
        self,
        address: str,
        namespace: str,
        timeout_seconds: float,
        token: SecretStr | None = None,
        *,
        store_timeout_seconds: float | None = None,
        search_timeout_seconds: float | None = None,
        breaker: CircuitBreaker | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds
        self.store_timeout_seconds = store_timeout_seconds or timeout_seconds
        self.search_timeout_seconds = search_timeout_seconds or timeout_seconds
        self.breaker = breaker or CircuitBreaker(failure_threshold=5, reset_seconds=5.0)
        # Kept as a SecretStr, so no repr or log of the client can show it.
        self._token = token
        traced = client_interceptors()
        if tls is None:
            self._channel = grpc.aio.insecure_channel(
                address, options=list(CHANNEL_OPTIONS), interceptors=traced
            )
        else:
            options = [*CHANNEL_OPTIONS, *tls.options()]
            self._channel = grpc.aio.secure_channel(
                address, tls.credentials(), options=options, interceptors=traced
            )
        self._stub = memory_pb2_grpc.MemoryServiceStub(self._channel)
        self.reachable: bool | None = None
        self.last_error = ""
        # Background writes in flight; a strong reference keeps each alive.
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: ExecutorSettings) -> MemoryClient:
        """The client the settings describe, with the executor's own token."""
        token = settings.memory_bearer_token
        if token is None:
            log.info(
                "calls to the memory service carry no token (EXECUTOR_MEMORY_TOKEN unset): "
                "fine only while its authentication is off"
            )
        else:
            source = "EXECUTOR_MEMORY_TOKEN" + ("_FILE" if settings.memory_token_file else "")
            log.info(
                "calls to the memory service carry the executor's token",
                extra={"token_source": source},
            )
        return cls(
            settings.memory_address,
            settings.memory_namespace,
            settings.memory_timeout_seconds,
            token,
            store_timeout_seconds=settings.memory_store_timeout_seconds,
            search_timeout_seconds=settings.memory_search_timeout_seconds,
            breaker=CircuitBreaker(
                settings.breaker_failure_threshold, settings.breaker_reset_seconds
            ),
            tls=settings.memory_tls,
        )

    def metadata(self, *, on_behalf_of: str | None = None) -> tuple[tuple[str, str], ...]:
        """The call's metadata: the caller's request and trace ids, so both
        services' logs correlate (the trace id as `traceparent` only when no
        span is current, tracing off: else the channel's interceptor sends the
        client span's), and credentials: the executor's own token,
        with the ON_BEHALF_OF_HEADER naming `on_behalf_of` when given. A
        caller's own credentials are never passed on."""
        pairs = []
        if request_id := request_id_var.get():
            pairs.append(("x-request-id", request_id))
        if not current_ids()[0] and len(trace_id := trace_id_var.get()) == 32:
            pairs.append(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"))
        if self._token is not None:
            pairs.append((AUTHORIZATION, f"Bearer {self._token.get_secret_value()}"))
        if on_behalf_of is not None:
            pairs.append((ON_BEHALF_OF_HEADER, on_behalf_of))
        return tuple(pairs)

    def deadline(self, remaining: float | None, configured: float | None = None) -> float:
        """The timeout of one call: configured (for its RPC, else the general
        one), capped by the caller's remainder."""
        configured = configured or self.timeout_seconds
        if remaining is None:
            return configured
        return max(0.0, min(configured, remaining - 0.05))

    def _record(
        self,
        error: grpc.aio.AioRpcError | None,
        delegated: bool = False,
    ) -> None:
        if error is None:
            self.reachable = True
            self.last_error = ""
            return
        code = error.code()
        if code in UNREACHABLE_CODES:
            self.reachable = False
        if code in CREDENTIAL_CODES:
            if "DELEGATION_NOT_GRANTED" in error_reasons(error):
                self.last_error = f"{code.name}: {DELEGATION_HINT}"
                return
            if delegated:
                # The executor's rights were refused, but the message names
                # the user it acted for: GetStatus must not show that id.
                self.last_error = (
                    f"{code.name} on a call made on a user's behalf ({EXECUTOR_CREDENTIALS_HINT})"
                )
                return
            self.last_error = f"{code.name}: {error.details()} ({EXECUTOR_CREDENTIALS_HINT})"
            return
        self.last_error = f"{code.name}: {error.details()}"

    async def store(
        self,
        pattern: memory_pb2.Pattern,
        remaining: float | None = None,
        *,
        on_behalf_of: str | None = None,
    ) -> memory_pb2.StorePatternResponse:
        """Stores a pattern in the executor's namespace, on behalf of
        `on_behalf_of`, else of the pattern's `owner` when set, else as the
        executor. The memory service sets the owner itself (an output-only
        field, outside the dedupe fingerprint), so sending it changes nothing."""
        request = memory_pb2.StorePatternRequest(namespace=self.namespace, pattern=pattern)
        return await self._call(
            self._stub.StorePattern,
            request,
            remaining,
            on_behalf_of=on_behalf_of if on_behalf_of is not None else pattern.owner or None,
            configured_seconds=self.store_timeout_seconds,
        )

    async def search(
        self,
        request: memory_pb2.SearchPatternsRequest,
        remaining: float | None = None,
        *,
        on_behalf_of: str | None = None,
    ) -> memory_pb2.SearchPatternsResponse:
        """Searches the executor's namespace on behalf of the user
        `on_behalf_of` (their visibility applies), else as the executor."""
        request.namespace = self.namespace
        return await self._call(
            self._stub.SearchPatterns,
            request,
            remaining,
            on_behalf_of=on_behalf_of,
            configured_seconds=self.search_timeout_seconds,
        )

    async def remember(
        self,
        session_id: str,
        key: str,
        value: str,
        remaining: float | None = None,
        *,
        on_behalf_of: str | None = None,
    ) -> memory_pb2.SetContextResponse:
        """Sets a private context entry of the session in the executor's
        namespace, with the memory service's default TTL: the executor's, or
        the user's `on_behalf_of`."""
        request = memory_pb2.SetContextRequest(
            namespace=self.namespace, session_id=session_id, key=key, value=value
        )
        return await self._call(
            self._stub.SetContext, request, remaining, on_behalf_of=on_behalf_of
        )

    def remember_choices_later(
        self,
        session_id: str,
        template_id: str,
        choices: Mapping[str, Answer],
        *,
        on_behalf_of: str | None = None,
    ) -> None:
        """Starts remembering the session's choices for the template, and
        returns at once: the caller never waits for, or fails with, the write."""
        value = encode_choices(choices)
        key = choices_key(template_id)
        if value is None:
            log.warning(
                "form choices not remembered: not representable as JSON", extra={"key": key}
            )
            return
        # The task copies the current context, so its call and any warning
        # carry the request and trace ids of the run that started it.
        task = asyncio.create_task(self._remember_quietly(session_id, key, value, on_behalf_of))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _remember_quietly(
        self, session_id: str, key: str, value: str, on_behalf_of: str | None
    ) -> None:
        # The client's own deadline, not the caller's: the run may end first.
        try:
            await self.remember(session_id, key, value, on_behalf_of=on_behalf_of)
        except grpc.aio.AioRpcError as error:
            # Neither the value nor the session id is logged: they are the user's.
            log.warning(
                "form choices not remembered",
                extra={"key": key, "reason": f"{error.code().name}: {error.details()}"},
            )
        except grpc.aio.UsageError:  # The channel closed under us (shutdown).
            log.warning("form choices not remembered: memory channel closed", extra={"key": key})

    async def recent_choices(
        self,
        session_id: str,
        template_id: str,
        remaining: float | None = None,
        *,
        on_behalf_of: str | None = None,
    ) -> dict[str, Answer] | None:
        """The session's remembered choices for the template, as the executor
        or the user `on_behalf_of` remembered them; None if there are none
        (never set, expired, or not in the shape remember writes).

        Only a private entry counts: remember writes nothing else, and a
        shared one may have been planted by another writer of the namespace.

        A failed call raises grpc.aio.AioRpcError, as store and search do, so
        the caller can tell "nothing remembered" from "could not ask".
        """
        request = memory_pb2.GetContextRequest(
            namespace=self.namespace, session_id=session_id, key=choices_key(template_id)
        )
        response = await self._call(
            self._stub.GetContext, request, remaining, on_behalf_of=on_behalf_of
        )
        for entry in response.entries:
            # A private entry is the reader's own: memory shows no one else's.
            if entry.key == request.key and not entry.shared:
                return decode_choices(entry.value)
        return None

    @property
    def pending_writes(self) -> int:
        """Background writes still in flight."""
        return len(self._pending)

    async def drain(self, within: float) -> None:
        """Waits, at most `within` seconds, for background writes, then cancels
        the rest: each has its own deadline, so this rarely cuts one short."""
        pending = set(self._pending)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=within)
        for task in late:
            task.cancel()
        if late:
            log.warning(
                "background memory writes cancelled at shutdown", extra={"count": len(late)}
            )
            await asyncio.wait(late)

    async def _call(
        self,
        method: Callable[..., Awaitable[Response]],
        request: Any,
        remaining: float | None,
        *,
        on_behalf_of: str | None = None,
        configured_seconds: float | None = None,
    ) -> Response:
        """One call with its deadline, the caller's ids and credentials, through
        the breaker; records the outcome (a call the breaker refused leaves the
        last real error in place: it says why the breaker opened)."""
        configured = configured_seconds or self.timeout_seconds
        deadline = self.deadline(remaining, configured)
        metadata = self.metadata(on_behalf_of=on_behalf_of)
        try:
            response = await self._guarded(
                lambda: method(request, timeout=deadline, metadata=metadata),
                cut_short=deadline < configured,
            )
        except BreakerOpenError:
            raise
        except grpc.aio.AioRpcError as error:
            self._record(error, delegated=on_behalf_of is not None)
            raise
        self._record(None)
        return response

    async def _guarded(
        self,
        invoke: Callable[[], Awaitable[Response]],
        cut_short: bool = False,
        judge: Callable[[Response], Outcome] = lambda _: Outcome.SUCCESS,
    ) -> Response:
        """Makes the call if the breaker admits it, and tells the breaker how
        it went; raises BreakerOpenError (UNAVAILABLE) at once if not."""
        permit = self.breaker.admit()
        if permit is None:
            raise BreakerOpenError(self.breaker.retry_in())
        try:
            response = await invoke()
        except grpc.aio.AioRpcError as error:
            self.breaker.record(permit, outcome_of(error.code(), cut_short))
            raise
        except BaseException:
            # Cancelled by our caller, or the channel closed at shutdown:
            # nothing learnt about the service, and a probe's slot is freed.
            self.breaker.record(permit, Outcome.NOTHING_LEARNT)
            raise
        self.breaker.record(permit, judge(response))
        return response

    async def probe(self) -> bool:
        """Asks the memory service's readiness; records and returns the answer.

        It passes the breaker like any call, so after the cool-down it is
        often the probe that half-opens and closes it, with no traffic at all.
        A NOT_SERVING answer counts as a failure: the service's RPCs would
        answer UNAVAILABLE.
        """
        stub: Any = health_pb2_grpc.HealthStub(self._channel)  # Its type stubs list no methods.
        request = health_pb2.HealthCheckRequest(service="attune.memory.v1.MemoryService")
        try:
            response = await self._guarded(
                lambda: stub.Check(request, timeout=self.timeout_seconds, metadata=self.metadata()),
                judge=lambda answer: (
                    Outcome.SUCCESS
                    if answer.status == health_pb2.HealthCheckResponse.SERVING
                    else Outcome.FAILURE
                ),
            )
        except BreakerOpenError:
            self.reachable = False
            return False
        except grpc.aio.AioRpcError as error:
            self.reachable = False
            self.last_error = f"{error.code().name}: {error.details()}"
            if error.code() in CREDENTIAL_CODES:
                self.last_error += f" ({EXECUTOR_CREDENTIALS_HINT})"
            return False
        ready = bool(response.status == health_pb2.HealthCheckResponse.SERVING)
        self.reachable = ready
        if ready:
            self.last_error = ""
        else:
            self.last_error = "memory service is not ready"
        return ready

    async def probe_forever(self, interval_seconds: float) -> None:
        """Keeps `reachable` current even while no call is made."""
        while True:
            await self.probe()
            await asyncio.sleep(interval_seconds)

    async def close(self) -> None:
        """Cancels background writes still in flight, then closes the channel."""
        await self.drain(0)
        await self._channel.close()
