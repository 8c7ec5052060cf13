"""Memory service benchmarks, as ratios to a bare gRPC echo in the same run.

- StorePattern p50 (sequential) per backend, with authentication, the security
  pipeline (secrets, PII, classification) and encryption on; target <= 2x echo p50.
- Store throughput with 64 concurrent calls; target >= 50% of echo throughput.
- SearchPatterns (free text + filter) over 100,000 patterns (embedded);
  targets p50 <= 6x, p95 <= 20x echo. Also: index bytes per pattern (target
  <= 4 KB) and the time until a restarted replica is SERVING (target <= 30 s).

BENCH_SEARCH_PATTERNS shrinks the search corpus for a quick run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import memory_process
from memory_service.patterns import fingerprint
from memory_service.search.index import SearchIndex
from memory_service.security.crypto import generate_key
from memory_service.security.identity import hash_token
from memory_service.servicekit.tls import ClientTls
from memory_service.store.embedded import stamped
from tests.bench.echo_server import METHOD
from tests.bench.harness import (
    channel,
    echo_samples,
    echo_server,
    mutual_tls,
    report,
    summary,
    time_calls,
)
from tests.corpus.generate import corpus
from tests.support.redis_servers import standalone

STORES = int(os.environ.get("BENCH_STORES", "1000"))
CONCURRENCY = 64
THROUGHPUT_CALLS = int(os.environ.get("BENCH_THROUGHPUT_CALLS", "4000"))
SEARCH_PATTERNS = int(os.environ.get("BENCH_SEARCH_PATTERNS", "100000"))
SEARCHES = int(os.environ.get("BENCH_SEARCHES", "300"))
NAMESPACE = "bench"


# Made at import: the corpus runs its own event loop.
BASE = [p for p in corpus(300) if p.type == memory_pb2.PATTERN_TYPE_EXECUTION]


def variants(count: int) -> list[memory_pb2.Pattern]:
    """`count` realistic patterns: the seeded corpus, varied in id, time and cost."""
    base = BASE
    made = []
    for n in range(count):
        pattern = memory_pb2.Pattern()
        pattern.CopyFrom(base[n % len(base)])
        pattern.id = pattern.run_id = f"bench-{n:07d}"
        pattern.create_time.FromSeconds(pattern.create_time.seconds - n * 37)
        pattern.total_cost_usd = round(pattern.total_cost_usd * (0.5 + (n % 100) / 100), 6)
        made.append(pattern)
    return made


async def throughput(call: Callable[[int], Awaitable[object]], calls: int) -> float:
    """Calls per second with CONCURRENCY calls in flight."""
    queue = iter(range(calls))

    async def worker() -> None:
        for n in queue:
            await call(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return calls / (time.perf_counter() - started)


BENCH_TOKEN = secrets.token_urlsafe(24)  # Minted per run, like a real token.


def secured_settings(root: Path) -> dict[str, str]:
    """Authentication and encryption on, as in production: the pipeline's full cost."""
    root.mkdir(parents=True, exist_ok=True)
    tokens = root / "tokens.yaml"
    tokens.write_text(
        f"- token_sha256: {hash_token(BENCH_TOKEN)}\n  user_id: bench\n  role: writer\n"
        '  namespaces: ["*"]\n'
    )
    return {"TOKENS_FILE": str(tokens), "ENCRYPTION_KEYS": f"bench:{generate_key()}"}


async def store_figures(
    address: str, label: str, echo_address: str, tls: ClientTls | None = None
) -> dict[str, float]:
    patterns = variants(STORES + THROUGHPUT_CALLS)
    async with (
        channel(address, tls) as memory_channel,
        channel(echo_address, tls) as echo_channel,
    ):
        stub = memory_pb2_grpc.MemoryServiceStub(memory_channel)
        counter = iter(range(len(patterns)))

        async def store_one(_: int = 0) -> None:
            pattern = patterns[next(counter)]
            request = memory_pb2.StorePatternRequest(
                namespace=f"{NAMESPACE}-{label}", pattern=pattern
            )
            await stub.StorePattern(
                request, timeout=10, metadata=(("authorization", f"Bearer {BENCH_TOKEN}"),)
            )

        sequential = summary(await time_calls(store_one, STORES - 50, warmup=50))
        stores_per_second = await throughput(store_one, THROUGHPUT_CALLS)
        echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = echo_channel.unary_unary(METHOD)

        async def echo_one(_: int) -> None:
            await echo(b"x" * 64, timeout=10)

        echoes_per_second = await throughput(echo_one, THROUGHPUT_CALLS)
    return {
        **sequential,
        "per_second": stores_per_second,
        "echo_per_second": echoes_per_second,
    }


def resident_bytes(pid: int) -> int:
    """The resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def build_index(data_dir: Path, patterns: list[memory_pb2.Pattern]) -> float:
    """Writes the embedded store's file directly, in one transaction; returns seconds."""
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / "patterns.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    index = SearchIndex(db)
    db.execute("BEGIN")
    for pattern in patterns:
        index.put(NAMESPACE, stamped(NAMESPACE, pattern), fingerprint(pattern))
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - started


QUERIES = [
    ("python package publish", "success = true"),
    ("coverage", "form_responses.test_coverage_required >= 80"),
    ("security audit", 'agents.tier = "premium"'),
    ("documentation", "total_cost_usd < 0.2"),
    ("review", "agent_count > 5"),
]


async def test_memory_service_figures(tmp_path: Path) -> None:
    rows: dict[str, dict[str, float]] = {}
    verdicts: dict[str, str] = {}
    with echo_server(tmp_path) as echo_address:
        echo = summary(await echo_samples(echo_address, 2000))
        rows["bare gRPC echo"] = echo
        backends: list[tuple[str, dict[str, str]]] = [("embedded", {})]
        with standalone(tmp_path / "redis") as redis:
            backends.append(("redis", {"STORE": "redis", "REDIS_URL": redis.url}))
            for label, extra in backends:
                memory = memory_process(
                    tmp_path / label,
                    LOG_LEVEL="warning",
                    settings={**extra, **secured_settings(tmp_path / label)},
                ).start()
                try:
                    figures = await store_figures(memory.address, label, echo_address)
                finally:
                    memory.terminate()
                rows[f"StorePattern ({label})"] = figures
                ratio = figures["p50_ms"] / echo["p50_ms"]
                share = figures["per_second"] / figures["echo_per_second"]
                verdicts[f"StorePattern p50 / echo ({label})"] = (
                    f"{ratio:.2f}x (target <= 2x: {'met' if ratio <= 2 else 'MISSED'})"
                )
                verdicts[f"store throughput at {CONCURRENCY} in flight ({label})"] = (
                    f"{figures['per_second']:.0f}/s = {share:.0%} of echo "
                    f"(target >= 50%: {'met' if share >= 0.5 else 'MISSED'})"
                )

        search_dir = tmp_path / "search" / "memory"
        built = build_index(search_dir, variants(SEARCH_PATTERNS))
        size = (search_dir / "patterns.sqlite3").stat().st_size
        started = time.perf_counter()
        memory = memory_process(tmp_path / "search", LOG_LEVEL="warning").start()
        ready = time.perf_counter() - started
        try:
            async with grpc.aio.insecure_channel(memory.address) as channel:
                stub = memory_pb2_grpc.MemoryServiceStub(channel)
                turn = iter(range(10**9))

                async def search_once() -> None:
                    query, condition = QUERIES[next(turn) % len(QUERIES)]
                    request = memory_pb2.SearchPatternsRequest(
                        namespace=NAMESPACE,
                        query=query,
                        filter=condition,
                        disable_query_understanding=True,
                    )
                    response = await stub.SearchPatterns(request, timeout=30)
                    assert response.results, (query, condition)

                searches = summary(await time_calls(search_once, SEARCHES, warmup=20))
            assert memory.process is not None
            rss = resident_bytes(memory.process.pid)
        finally:
            memory.terminate()
    rows[f"SearchPatterns over {SEARCH_PATTERNS} (embedded)"] = searches
    p50 = searches["p50_ms"] / echo["p50_ms"]
    p95 = searches["p95_ms"] / echo["p95_ms"]
    verdicts["SearchPatterns p50 / echo"] = (
        f"{p50:.1f}x (target <= 6x: {'met' if p50 <= 6 else 'MISSED'})"
    )
    verdicts["SearchPatterns p95 / echo"] = (
        f"{p95:.1f}x (target <= 20x: {'met' if p95 <= 20 else 'MISSED'})"
    )
    per_pattern = rss / SEARCH_PATTERNS
    verdicts["memory per pattern (replica RSS after the searches)"] = (
        f"{per_pattern:.0f} B (target <= 4096: {'met' if per_pattern <= 4096 else 'MISSED'})"
    )
    verdicts["disk per pattern (store file: patterns, records, two text indexes)"] = (
        f"{size / SEARCH_PATTERNS:.0f} B"
    )
    verdicts["restarted replica SERVING after"] = (
        f"{ready:.1f} s over {SEARCH_PATTERNS} patterns (target <= 30 s: "
        f"{'met' if ready <= 30 else 'MISSED'}); index built offline in {built:.0f} s"
    )
    report("bench_memory", rows, verdicts)


async def test_memory_store_over_mutual_tls(tmp_path: Path) -> None:
    """StorePattern (embedded) over mutual TLS and in plaintext, vs TLS and plaintext echoes."""
    pki = mutual_tls(tmp_path)
    server, tls, served = pki.server, pki.tls, pki.served
    rows: dict[str, dict[str, float]] = {}
    with (
        echo_server(tmp_path) as plain_address,
        echo_server(tmp_path, (server.cert, server.key)) as tls_address,
    ):
        plain = rows["bare gRPC echo (plaintext)"] = summary(
            await echo_samples(plain_address, 2000)
        )
        echo = rows["bare gRPC echo (TLS)"] = summary(
            await echo_samples(tls_address, 2000, tls=tls)
        )
        stores: dict[str, dict[str, float]] = {}
        for label, extra, client_tls, echo_address in (
            ("plaintext", {}, None, plain_address),
            ("mutual TLS", served, tls, tls_address),
        ):
            root = tmp_path / label.replace(" ", "-")
            settings = {**secured_settings(root), **extra}
            memory = memory_process(root, LOG_LEVEL="warning", settings=settings)
            memory.tls = client_tls
            memory.start()
            try:
                name = label.replace(" ", "-").lower()
                figures = await store_figures(memory.address, name, echo_address, client_tls)
            finally:
                memory.terminate()
            stores[label] = rows[f"StorePattern, {label} (embedded)"] = figures
    secured, bare = stores["mutual TLS"], stores["plaintext"]
    over_tls, over_plain = secured["p50_ms"] / echo["p50_ms"], secured["p50_ms"] / plain["p50_ms"]
    verdicts = {
        "StorePattern over mTLS p50 / TLS echo p50": (
            f"{over_tls:.2f}x (target <= 2x: {'met' if over_tls <= 2 else 'MISSED'})"
        ),
        "StorePattern over mTLS p50 / plaintext echo p50": f"{over_plain:.2f}x",
        "StorePattern plaintext p50 / plaintext echo p50": (
            f"{bare['p50_ms'] / plain['p50_ms']:.2f}x"
        ),
        "StorePattern p50, mTLS / plaintext": f"{secured['p50_ms'] / bare['p50_ms']:.2f}x",
        "TLS echo p50 / plaintext echo p50": f"{echo['p50_ms'] / plain['p50_ms']:.2f}x",
        f"store throughput at {CONCURRENCY} in flight, mTLS / plaintext": (
            f"{secured['per_second']:.0f}/s vs {bare['per_second']:.0f}/s "
            f"({secured['per_second'] / secured['echo_per_second']:.0%} of the TLS echo's)"
        ),
    }
    report("bench_memory_tls", rows, verdicts)
