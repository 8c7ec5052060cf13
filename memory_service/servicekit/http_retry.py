"""One JSON POST to a model API, retried on transient failures with tenacity.

Retried: 429, 5xx, timeouts and connection errors, waiting what the
server's Retry-After asks for, else exponential backoff with jitter. Not
retried: any other non-2xx answer. Every message that leaves this module
has the API key scrubbed out, since servers sometimes echo it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

log = logging.getLogger("attune.executor.llm")

_REDACTED = "[redacted]"
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between tries of one call."""

    max_retries: int
    backoff_seconds: float = 1.0  # The first backoff; it doubles per retry.
    backoff_max_seconds: float = 30.0
    # A longer Retry-After fails the call at once: better than holding a run for it.
    retry_after_max_seconds: float = 60.0


@dataclass(frozen=True)
class JsonPost:
    """A request to send; `secret` is what to scrub from every message."""

    api: str  # Names the API in messages, e.g. "Anthropic API".
    url: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    secret: str


class LLMCallError(Exception):
    """The call failed for good. The message is safe to record: no secret in it."""


class _TransientError(Exception):
    """A failure worth retrying; `retry_after` is the server's requested wait."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def scrub(text: str, secret: str) -> str:
    """The text with every occurrence of the secret replaced."""
    return text.replace(secret, _REDACTED) if secret else text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP date), if valid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _detail(response: httpx.Response) -> str:
    """The API's own error message if it gave one, else the start of the body."""
    message: object = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        message = error.get("message") if isinstance(error, dict) else error
    text = message if isinstance(message, str) and message else response.text
    text = " ".join(text.split())
    return text[:_DETAIL_CHARS] + ("…" if len(text) > _DETAIL_CHARS else "")


class _RetryAfterOrBackoff(wait_base):
    """The server's Retry-After when it sent one, else the backoff."""

    def __init__(self, backoff: wait_base) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(error, _TransientError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(retry_state)


async def _post_once(
    client: httpx.AsyncClient, post: JsonPost, timeout_seconds: float, policy: RetryPolicy
) -> object:
    try:
        # httpx's timeout bounds each phase; this bounds the whole call.
        async with asyncio.timeout(timeout_seconds):
            response = await client.post(
                post.url, headers=dict(post.headers), json=post.body, timeout=timeout_seconds
            )
    except (TimeoutError, httpx.TimeoutException):
        raise _TransientError(f"timed out after {timeout_seconds:g} s") from None
    except (httpx.NetworkError, httpx.RemoteProtocolError) as error:
        raise _TransientError(f"connection failed ({type(error).__name__})") from None
    status = response.status_code
    if status == 429 or status >= 500:
        wait = parse_retry_after(response.headers.get("retry-after"))
        reason = f"answered {status}: {_detail(response)}"
        if wait is not None and wait > policy.retry_after_max_seconds:
            raise LLMCallError(
                f"{post.api} {reason} (asked to retry after {wait:g} s, "
                f"longer than the {policy.retry_after_max_seconds:g} s limit)"
            )
        raise _TransientError(reason, wait)
    if not response.is_success:
        raise LLMCallError(f"{post.api} answered {status}: {_detail(response)}")
    try:
        return response.json()
    except ValueError:
        raise LLMCallError(f"{post.api} answered {status} with a body that is not JSON") from None


async def post_json(
    client: httpx.AsyncClient, post: JsonPost, timeout_seconds: float, policy: RetryPolicy
) -> object:
    """The decoded JSON body of a 2xx answer; raises LLMCallError otherwise."""
    tries = 0

    async def once() -> object:
        nonlocal tries
        tries += 1
        return await _post_once(client, post, timeout_seconds, policy)

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "model call retrying",
            extra={
                "api": post.api,
                "try": state.attempt_number,
                "reason": scrub(str(error), post.secret),
                "wait_seconds": round(wait, 3),
            },
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_retries + 1),
        wait=_RetryAfterOrBackoff(
            wait_exponential_jitter(
                multiplier=policy.backoff_seconds,
                max=policy.backoff_max_seconds,
                jitter=policy.backoff_seconds,
            )
        ),
        retry=retry_if_exception_type(_TransientError),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        result: object = await retrying(once)
    except _TransientError as error:
        tried = f"{tries} {'try' if tries == 1 else 'tries'}"
        raise LLMCallError(
            scrub(f"{post.api} {error} (gave up after {tried})", post.secret)
        ) from None
    except LLMCallError as error:
        raise LLMCallError(scrub(str(error), post.secret)) from None
    return result
