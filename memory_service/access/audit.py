"""An append-only audit log of who accessed which namespace, and how it ended.

File format: UTF-8 JSON Lines, one record per line, oldest first:

    {"seq":42,"event_time":"2025-06-01T12:00:00.123456Z","principal":"alice",
     "namespace":"team-a","action":"get","pattern_ids":["p1"],"result_count":1,
     "outcome":"OK","request_id":"01J...","peer":"ipv4:10.0.0.7:51234",
     "repeat_count":1}

plus "delegated_by":"svc:executor" on a record of a call a service made on
the principal's behalf, and "private_ids" where they apply.

(one line in the file). `seq` increases by one per record across rotations
and restarts; it orders records and anchors page tokens, which stay valid
while new records arrive. Files rotate by size like
logging.handlers.RotatingFileHandler: `path` is the newest, then `path.1`
... `path.N`, and the oldest file falls off the end, so the log keeps at most
about (N + 1) * max_bytes.

One process writes one file: replicas each get their own path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

import grpc

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import (
    FieldSpec,
    FieldType,
    FilterError,
    Node,
    Schema,
    compile_filter,
    matches,
    parse_timestamp,
)
from memory_service.servicekit.errors import invalid_argument
from memory_service.servicekit.logging import request_id_var
from memory_service.servicekit.paging import decode_cursor, encode_cursor, page_bounds
from memory_service.servicekit.private_files import private_dir, private_opener

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Denied calls carry unvalidated request values: keep one record's line bounded.
MAX_FIELD_LENGTH = 256
MAX_PATTERN_IDS = 1000
_INT32_MAX = 2**31 - 1
# What a reader other than the record's principal sees in place of the id of
# a SENSITIVE pattern (never a valid pattern id, so it names no pattern).
REDACTED_ID = "(sensitive)"


class AuditAction(StrEnum):
    """What an audited call did."""

    STORE = "store"
    GET = "get"
    SEARCH = "search"
    LIST = "list"
    COUNT = "count"
    DELETE = "delete"
    CONTEXT = "context"
    PROMOTE = "promote"
    AUDIT = "audit"  # Reading the audit log is itself audited.
    DENIED = "denied"  # Refused before the action was known (e.g. unauthenticated).
    # The executor's own actions; its runs are read with get, list and search.
    TEMPLATES = "templates"
    PLAN = "plan"
    RUN = "run"
    ANALYTICS = "analytics"
    RECOMMEND = "recommend"
    STATUS = "status"


AUDIT_SCHEMA = Schema(
    {
        "principal": FieldSpec(FieldType.STRING),
        "namespace": FieldSpec(FieldType.STRING),
        "action": FieldSpec(
            FieldType.ENUM, enum_values=tuple(action.name for action in AuditAction)
        ),
        "outcome": FieldSpec(
            FieldType.ENUM, enum_values=tuple(code.name for code in grpc.StatusCode)
        ),
        "event_time": FieldSpec(FieldType.TIMESTAMP),
        "request_id": FieldSpec(FieldType.STRING),
        "pattern_ids": FieldSpec(FieldType.STRING, repeated=True),
        "result_count": FieldSpec(FieldType.NUMBER),
        "peer": FieldSpec(FieldType.STRING),
        "repeat_count": FieldSpec(FieldType.NUMBER),
        "delegated_by": FieldSpec(FieldType.STRING),
    }
)


def _now() -> datetime:
    return datetime.now(UTC)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_FIELD_LENGTH else text[: MAX_FIELD_LENGTH - 1] + "…"


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One audited access.

    principal is the user id ("anonymous" when authentication is off, "" when
    the caller could not be authenticated); action is an AuditAction value;
    outcome is a gRPC status code name ("OK", "PERMISSION_DENIED", ...).
    request_id defaults to the current RPC's, from the logging context.
    private_ids are those of pattern_ids that name SENSITIVE patterns: only
    the principal (their owner: nobody else can touch one) reads them back,
    everyone else sees REDACTED_ID in their place (see `seen_by`).
    peer is the caller's address as gRPC names it ("ipv4:10.0.0.7:51234").
    repeat_count is how many calls the record stands for: more than 1 only
    for calls refused by the denied-calls budget, folded into one record
    (see memory_service/access/denials.py).
    delegated_by is the service that made the call on the principal's behalf
    (identity.acting_principal); "" when the principal called itself.
    """

    principal: str
    namespace: str
    action: str
    outcome: str = "OK"
    pattern_ids: tuple[str, ...] = ()
    result_count: int = 0
    event_time: datetime = field(default_factory=_now)
    request_id: str = field(default_factory=request_id_var.get)
    private_ids: tuple[str, ...] = ()
    peer: str = ""
    repeat_count: int = 1
    delegated_by: str = ""

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__ once, at construction.
        moment = self.event_time
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        object.__setattr__(self, "event_time", moment)
        object.__setattr__(self, "principal", _clip(self.principal))
        object.__setattr__(self, "namespace", _clip(self.namespace))
        object.__setattr__(self, "action", str(self.action))
        object.__setattr__(self, "request_id", _clip(self.request_id))
        ids = tuple(_clip(i) for i in self.pattern_ids[:MAX_PATTERN_IDS])
        object.__setattr__(self, "pattern_ids", ids)
        private = tuple(_clip(i) for i in self.private_ids[:MAX_PATTERN_IDS])
        object.__setattr__(self, "private_ids", private)
        object.__setattr__(self, "result_count", max(0, min(int(self.result_count), _INT32_MAX)))
        object.__setattr__(self, "peer", _clip(self.peer))
        object.__setattr__(self, "repeat_count", max(1, min(int(self.repeat_count), _INT32_MAX)))
        object.__setattr__(self, "delegated_by", _clip(self.delegated_by))

    def seen_by(self, reader: str | None) -> AuditRecord:
        """The record as `reader` may read it: another user's SENSITIVE pattern
        ids redacted (None: as stored, for the service itself)."""
        if reader is None or reader == self.principal or not self.private_ids:
            return self
        private = set(self.private_ids)
        shown = tuple(REDACTED_ID if i in private else i for i in self.pattern_ids)
        return replace(self, pattern_ids=shown, private_ids=())

    def to_proto(self) -> memory_pb2.AuditEvent:
        """The record as the API's AuditEvent."""
        event = memory_pb2.AuditEvent(
            principal=self.principal,
            namespace=self.namespace,
            action=self.action,
            pattern_ids=self.pattern_ids,
            result_count=self.result_count,
            outcome=self.outcome,
            request_id=self.request_id,
            peer=self.peer,
            repeat_count=self.repeat_count,
            delegated_by=self.delegated_by,
        )
        event.event_time.FromDatetime(self.event_time)
        return event

    def to_json(self) -> dict[str, Any]:
        """The record's fields as JSON values (event_time as RFC 3339 UTC)."""
        data: dict[str, Any] = {
            "event_time": self.event_time.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "principal": self.principal,
            "namespace": self.namespace,
            "action": self.action,
            "pattern_ids": list(self.pattern_ids),
            "result_count": self.result_count,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "peer": self.peer,
            "repeat_count": self.repeat_count,
        }
        # Each absent otherwise, as in records written before it existed.
        if self.private_ids:
            data["private_ids"] = list(self.private_ids)
        if self.delegated_by:
            data["delegated_by"] = self.delegated_by
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditRecord:
        """The record of a to_json() mapping; ValueError/TypeError/KeyError if it is not one."""
        ids = data.get("pattern_ids", [])
        private = data.get("private_ids", [])
        count = data.get("result_count", 0)
        repeats = data.get("repeat_count", 1)  # Absent from records of older versions.
        strings = {
            name: data.get(name, "")
            for name in (
                "principal",
                "namespace",
                "action",
                "outcome",
                "request_id",
                "peer",
                "delegated_by",  # Absent from records of older versions.
            )
        }
        for listed in (ids, private):
            if not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
                raise ValueError("pattern_ids or private_ids is not a list of strings")
        if type(count) is not int or type(repeats) is not int:
            raise ValueError("result_count or repeat_count is not an integer")
        if not all(isinstance(value, str) for value in strings.values()):
            raise ValueError("a text field is not a string")
        return cls(
            event_time=parse_timestamp(str(data["event_time"])),
            pattern_ids=tuple(ids),
            private_ids=tuple(private),
            result_count=count,
            repeat_count=repeats,
            **strings,
        )

    def filter_record(self) -> dict[str, Any]:
        """The record as AUDIT_SCHEMA sees it."""
        return {
            "principal": self.principal,
            "namespace": self.namespace,
            "action": self.action,
            "outcome": self.outcome,
            "event_time": self.event_time,
            "request_id": self.request_id,
            "pattern_ids": list(self.pattern_ids),
            "result_count": self.result_count,
            "peer": self.peer,
            "repeat_count": self.repeat_count,
            "delegated_by": self.delegated_by,
        }


class AuditLog(Protocol):
    """Where audit records go and how they are read back (newest first)."""

    async def write(self, record: AuditRecord) -> None:
        """Appends one record; raises if it could not be stored."""
        ...

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

        namespace None means every namespace (the caller has checked the
        caller may see them all); the filter uses AUDIT_SCHEMA and sees each
        record as `reader` may (AuditRecord.seen_by), so it cannot find a
        redacted id either.
        """
        ...


def compile_audit_filter(filter_text: str) -> Node | None:
    """The checked filter; INVALID_ARGUMENT naming the problem."""
    try:
        return compile_filter(filter_text, AUDIT_SCHEMA)
    except FilterError as error:
        raise invalid_argument([("filter", str(error))]) from None


def _page_scope(namespace: str | None, filter_text: str) -> str:
    # repr() keeps None (every namespace) apart from any real namespace name.
    return f"audit|{namespace!r}|{filter_text}"


def _lines_newest_first(handle: IO[bytes], size: int, block: int = 64 * 1024) -> Iterator[bytes]:
    """The non-empty lines of the first `size` bytes of a file, last line first."""
    position, tail = size, b""
    while position > 0:
        start = max(0, position - block)
        handle.seek(start)
        chunk = handle.read(position - start) + tail
        position = start
        lines = chunk.split(b"\n")
        tail = lines[0]  # Maybe the end of a line that began in an earlier block.
        for line in reversed(lines[1:]):
            if line:
                yield line
    if tail:
        yield tail


def _parse_line(line: bytes) -> tuple[int, AuditRecord] | None:
    """(seq, record) of one line; None for a torn or foreign line."""
    try:
        data = json.loads(line)
        seq = data["seq"]
        if type(seq) is not int:
            return None
        return seq, AuditRecord.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None


def is_sequence_cursor(text: str) -> bool:
    """Whether the text is a record sequence number, as the file log's cursors are."""
    return text.isascii() and text.isdigit()


def page_request(
    namespace: str | None,
    filter_text: str,
    page_size: int,
    page_token: str,
    cursor_ok: Callable[[str], bool],
) -> tuple[Node | None, int, str, str]:
    """(filter, page size, token scope, cursor) of a read; INVALID_ARGUMENT if bad.

    The token holds a cursor (older than record N), not an offset: new
    records arrive at the head, and an offset would repeat records on the
    next page. namespace None reads every namespace; "" never means that.
    """
    if namespace == "":
        raise ValueError("namespace '' never means every namespace; pass None for that")
    condition = compile_audit_filter(filter_text)
    size = page_bounds(page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    scope = _page_scope(namespace, filter_text)
    after = decode_cursor(page_token, scope)
    if after and not cursor_ok(after):
        raise invalid_argument([("page_token", "not a token this service issued")])
    return condition, size, scope, after


class FileAuditLog:
    """The audit log in rotated JSON Lines files (see the module docstring).

    Writes run in a worker thread under a lock, so the event loop never waits
    on the disk and records from many tasks (or threads) land as whole lines.
    Each batch is flushed to the OS before write_many() returns: a crash of
    the process loses nothing. A batch is fsynced when the caller asks
    (`sync=True`: BufferedAudit does for acknowledged writes, as the
    embedded store fsyncs their commit), or always with fsync=True; then it
    also survives a machine crash or power loss. One fsync serves a batch.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int, *, fsync: bool = False) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if backups < 1:
            # RotatingFileHandler's backupCount=0 means "never rotate": an
            # unbounded file. Ask for at least one backup instead.
            raise ValueError("backups must be at least 1")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._next_seq = 0  # Known once the file is opened.
        self._closed = False

    def _paths(self) -> list[Path]:
        """Every file, newest first."""
        return [
            self.path,
            *(self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.backups + 1)),
        ]

    # --- writing (under self._lock, in a worker thread) ---

    def _open(self) -> IO[bytes]:
        private_dir(self.path.parent)
        # Owner-only: the log names users and what they touched.
        handle = open(self.path, "ab", opener=private_opener)  # noqa: SIM115
        size = handle.tell()
        if size:
            with open(self.path, "rb") as reader:
                reader.seek(size - 1)
                if reader.read(1) != b"\n":
                    # A crash tore the last line: end it so the next record stays whole.
                    handle.write(b"\n")
                    handle.flush()
        return handle

    def _recover_seq(self) -> int:
        """One past the newest record's seq, searching back through rotated files."""
        for path in self._paths():
            try:
                with open(path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    for line in _lines_newest_first(handle, size):
                        parsed = _parse_line(line)
                        if parsed is not None:
                            return parsed[0] + 1
            except FileNotFoundError:
                continue
        return 1

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        paths = self._paths()
        # Shift path.N-1 -> path.N, ..., path -> path.1; the oldest is replaced.
        for newer, older in zip(reversed(paths[:-1]), reversed(paths[1:]), strict=True):
            if newer.exists():
                os.replace(newer, older)
        self._file = self._open()

    def _append(self, bodies: Sequence[str], sync: bool) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the audit log is closed")
            if self._file is None:
                self._next_seq = self._recover_seq()
                self._file = self._open()
            for body in bodies:
                # seq is assigned here, under the lock, so file order is seq order.
                line = f'{{"seq":{self._next_seq},{body[1:]}\n'.encode()
                size = self._file.tell()
                if size and size + len(line) > self.max_bytes:
                    self._rotate()
                    assert self._file is not None
                self._file.write(line)
                self._next_seq += 1
            # One flush (and fsync) per batch: concurrent writers share the cost.
            self._file.flush()
            if self.fsync or sync:
                os.fsync(self._file.fileno())

    async def write(self, record: AuditRecord) -> None:
        """Appends one record; OSError (e.g. disk full) propagates to the caller."""
        await self.write_many([record])

    async def write_many(self, records: Sequence[AuditRecord], *, sync: bool = False) -> None:
        """Appends records in order, with one trip to a worker thread.

        Flushed to the OS before this returns (a killed process loses
        nothing); `sync` (or fsync=True) also fsyncs, so the records survive
        a machine crash too.
        """
        # ensure_ascii: every line is plain ASCII, so no byte can split it.
        bodies = [
            json.dumps(record.to_json(), separators=(",", ":"), ensure_ascii=True)
            for record in records
        ]
        await asyncio.to_thread(self._append, bodies, sync)

    def close(self) -> None:
        """Closes the file; later writes raise RuntimeError."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    # --- reading ---

    def _snapshot(self) -> list[tuple[IO[bytes], int]]:
        """Open handles and sizes of every file, newest first, at one instant.

        Taken under the write lock, so no rotation or half-written line is in
        view; open handles keep reading the right data after later renames.
        """
        handles: list[tuple[IO[bytes], int]] = []
        with self._lock:
            try:
                for path in self._paths():
                    try:
                        handle: IO[bytes] = open(path, "rb")  # noqa: SIM115
                    except FileNotFoundError:
                        continue
                    handles.append((handle, os.fstat(handle.fileno()).st_size))
            except BaseException:
                for opened, _ in handles:
                    opened.close()
                raise
        return handles

    def _records_newest_first(self) -> Generator[tuple[int, AuditRecord], None, None]:
        handles = self._snapshot()
        skipped = 0
        try:
            for handle, size in handles:
                for line in _lines_newest_first(handle, size):
                    parsed = _parse_line(line)
                    if parsed is None:
                        skipped += 1
                        continue
                    yield parsed
        finally:
            for handle, _ in handles:
                handle.close()
            if skipped:
                logger.warning(
                    "skipped unreadable audit log lines", extra={"skipped_lines": skipped}
                )

    def _read_page(
        self,
        namespace: str | None,
        condition: Node | None,
        size: int,
        before: int | None,
        reader: str | None = None,
    ) -> tuple[list[tuple[int, AuditRecord]], bool]:
        found: list[tuple[int, AuditRecord]] = []
        # closing(): a full page stops early, and the files must close now, not at GC.
        with closing(self._records_newest_first()) as records:
            for seq, stored in records:
                if before is not None and seq >= before:
                    continue
                if namespace is not None and stored.namespace != namespace:
                    continue
                record = stored.seen_by(
                    reader
                )  # Before the filter: it must not find a redacted id.
                if not matches(condition, record.filter_record(), AUDIT_SCHEMA):
                    continue
                if len(found) == size:
                    return found, True
                found.append((seq, record))
        return found, False

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

        namespace None reads every namespace; "" is refused (it never means all).
        Each record as `reader` may see it (AuditRecord.seen_by).
        INVALID_ARGUMENT for a bad filter, page size or token.
        """
        condition, size, scope, after = page_request(
            namespace, filter_text, page_size, page_token, is_sequence_cursor
        )
        before = int(after) if after else None
        found, more = await asyncio.to_thread(
            self._read_page, namespace, condition, size, before, reader
        )
        token = encode_cursor(str(found[-1][0]), scope) if more and found else ""
        return [record for _, record in found], token
