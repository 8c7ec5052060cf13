"""The audit log in one Redis stream, shared by every replica on the same Redis.

With the redis store, replicas sit behind a load balancer: a log file per
replica would show an admin only the replica their ListAuditEvents reached.
Every replica therefore appends to one stream, `<prefix>:audit`, and any
replica reads all of it.

Each entry has one field, `record`: the record's JSON (AuditRecord.to_json,
ASCII only), the same object as a line of FileAuditLog minus `seq`. The
stream id (`<milliseconds>-<n>`, assigned by Redis) orders records and
anchors page tokens, so no sequence number is kept: ids only grow, and a
token stays valid while new records arrive at the head. Order is the order
in which Redis took the records, which across replicas may differ from
event_time by the time a batch waits in a replica's buffer.

XADD trims with `MAXLEN ~ max_entries`: Redis drops whole macro nodes of the
oldest entries, which is far cheaper than exact trimming, so the stream
holds at least max_entries and briefly somewhat more.

On Redis Cluster the stream is one key and so lives on one node; audit
traffic is one pipelined round trip per batch, which one node carries well.
A batch lost on the way may be appended twice when redis-py retries the
pipeline after a broken connection: a duplicate audit line is preferred to
a lost one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, cast

import redis.exceptions as redis_errors
from redis.asyncio import Redis

from memory_service.access.audit import (
    AUDIT_SCHEMA,
    AuditRecord,
    page_request,
)
from memory_service.search.filter import Node, matches
from memory_service.servicekit.errors import unavailable
from memory_service.servicekit.paging import encode_cursor
from memory_service.store.redis.link import (
    UNAVAILABLE_ERRORS,
    RedisOptions,
    describe,
    redis_client,
)

logger = logging.getLogger(__name__)

RECORD_FIELD = "record"
DEFAULT_MAX_ENTRIES = 1_000_000
# Entries fetched per XREVRANGE round trip while looking for matches.
READ_CHUNK = 500
# Entries one read examines at most. A selective filter over a long stream
# would otherwise make one RPC walk the whole stream; past this budget the
# page returns short (possibly empty) with a token to continue below.
SCAN_BUDGET = 50_000

_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def is_stream_id(text: str) -> bool:
    """Whether the text is an id Redis could have given a stream entry: two
    64-bit unsigned parts (Redis refuses a larger one with an error)."""
    if not _STREAM_ID.fullmatch(text):
        return False
    return all(int(part) < 2**64 for part in text.split("-"))


class AuditLogUnavailableError(ConnectionError):
    """Redis did not take a batch of audit records.

    A ConnectionError (so an OSError): BufferedAudit logs OSErrors loudly and
    carries on, which is what a failed audit write must do.
    """


def _encode(record: AuditRecord) -> str:
    # ASCII keeps the raw stream readable with any client and any terminal.
    return json.dumps(record.to_json(), separators=(",", ":"), ensure_ascii=True)


def _decode(fields: Any) -> AuditRecord | None:
    """The record of one entry's fields; None for an entry this log did not write."""
    try:
        raw = fields.get(RECORD_FIELD.encode())
        if raw is None:
            return None
        return AuditRecord.from_json(json.loads(raw))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None


class RedisStreamAuditLog:
    """An AuditLog (see security/audit.py) on the Redis stream `<prefix>:audit`.

    Same interface and read semantics as FileAuditLog: write_many appends a
    batch (one pipelined round trip), read returns a filtered page newest
    first. A batch Redis could not take is kept and written ahead of the
    next batch, once; if that fails too it is dropped (and logged by the
    caller): holding more would grow without bound through a long outage.
    """

    def __init__(self, options: RedisOptions, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.key = f"{options.key_prefix}:audit"
        self.where = describe(options)
        self.max_entries = max_entries
        # Same timeouts, retries and credentials as the store: one Redis, one policy.
        self._client = redis_client(options)
        self._held: list[AuditRecord] = []
        self._closed = False

    # --- writing ---------------------------------------------------------------

    async def write(self, record: AuditRecord) -> None:
        """Appends one record; AuditLogUnavailableError if Redis did not take it."""
        await self.write_many([record])

    async def write_many(self, records: Sequence[AuditRecord], *, sync: bool = False) -> None:
        """Appends records in order, with any held-back batch first.

        Done once Redis has applied the XADDs, sync or not: durability past
        a Redis restart is Redis's own (appendonly, appendfsync).

        AuditLogUnavailableError if Redis did not take them (the new records
        are then held for one retry); RuntimeError once closed.
        """
        if self._closed:
            raise RuntimeError("the audit log is closed")
        retried, self._held = self._held, []
        batch = [*retried, *records]
        if not batch:
            return
        # No MULTI: the entries need order, not atomicity, and a plain
        # pipeline also runs unchanged on a cluster client (one key, one node).
        pipe = self._client.pipeline(transaction=False)
        for record in batch:
            pipe.xadd(
                self.key,
                {RECORD_FIELD: _encode(record)},
                maxlen=self.max_entries,
                approximate=True,
            )
        try:
            await pipe.execute()
        except UNAVAILABLE_ERRORS as error:
            self._held = list(records)
            raise AuditLogUnavailableError(
                f"the audit log (Redis at {self.where}) is unavailable: "
                f"{str(error) or type(error).__name__}; {len(records)} records kept for one "
                f"retry, {len(retried)} held since the last failure dropped"
            ) from error
        except redis_errors.RedisError as error:
            # Not an outage (e.g. the key holds another type): retrying cannot help.
            raise AuditLogUnavailableError(
                f"the audit log (Redis at {self.where}) refused {len(batch)} records: "
                f"{str(error) or type(error).__name__}"
            ) from error

    def close(self) -> None:
        """Refuses later writes; aclose() then releases the connections."""
        self._closed = True
        if self._held:
            logger.error(
                "audit records dropped at shutdown: Redis did not take them",
                extra={"records": len(self._held)},
            )
            self._held = []

    async def aclose(self) -> None:
        """Closes the Redis connections (after close(); BufferedAudit calls that)."""
        self.close()
        # Nothing to release on a connection that is already gone.
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await self._client.aclose()

    # --- reading ---------------------------------------------------------------

    async def _scan(
        self,
        namespace: str | None,
        condition: Node | None,
        size: int,
        after: str,
        reader: str | None = None,
    ) -> tuple[list[AuditRecord], str]:
        """Up to `size` matches older than stream id `after` ("" = newest), and where to resume.

        The resume point is the id of the last record returned when another
        match follows it, the last entry examined when the scan budget ran
        out first, and "" when the stream ended.
        """
        client = cast(Redis, self._client)  # Same stream commands on both clients.
        found: list[tuple[str, AuditRecord]] = []
        top = f"({after}" if after else "+"  # "(": exclusive, Redis 6.2+.
        examined = skipped = 0
        try:
            while True:
                entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrevrange(
                    self.key, max=top, min="-", count=READ_CHUNK
                )
                for raw_id, fields in entries:
                    examined += 1
                    stored = _decode(fields)
                    if stored is None:
                        skipped += 1
                        continue
                    if namespace is not None and stored.namespace != namespace:
                        continue
                    record = stored.seen_by(reader)  # Before the filter, as FileAuditLog.
                    if not matches(condition, record.filter_record(), AUDIT_SCHEMA):
                        continue
                    if len(found) == size:
                        # One match past a full page: there is a next page.
                        return [r for _, r in found], found[-1][0]
                    found.append((raw_id.decode(), record))
                if len(entries) < READ_CHUNK:
                    return [r for _, r in found], ""
                last = entries[-1][0].decode()
                if examined >= SCAN_BUDGET:
                    return [r for _, r in found], last
                top = f"({last}"
        finally:
            if skipped:
                logger.warning(
                    "skipped unreadable audit stream entries", extra={"skipped_entries": skipped}
                )

    async def read(
        self,
        namespace: str | None,
        filter_text: str,
        page_size: int,
        page_token: str,
        *,
        reader: str | None = None,
    ) -> tuple[list[AuditRecord], str]:
        """One page of records, newest first, and the next page's token ("" at the end).

        namespace None reads every namespace; "" is refused (it never means
        all). INVALID_ARGUMENT for a bad filter, page size or token;
        UNAVAILABLE while Redis cannot be reached. A page may hold fewer than
        page_size records, even none, and still carry a token when the scan
        budget ran out before the stream did. Each record as `reader` may
        see it (AuditRecord.seen_by).
        """
        condition, size, scope, after = page_request(
            namespace, filter_text, page_size, page_token, is_stream_id
        )
        try:
            records, resume = await self._scan(namespace, condition, size, after, reader)
        except UNAVAILABLE_ERRORS as error:
            raise unavailable(
                f"the audit log (Redis at {self.where}) is unavailable: "
                f"{str(error) or type(error).__name__}"
            ) from error
        return records, encode_cursor(resume, scope) if resume else ""
