"""Memory service benchmarks, as ratios to a bare gRPC echo in the same run.

- StorePattern p50 (sequential) per backend, with authentication, the security
  pipeline (secrets, PII, classification) and encryption on; target <= 2x echo p50.
- Store throughput with 64 concurrent calls; target >= 50% of echo throughput.
- SearchPatterns with text AND a filter over 100,000 patterns (embedded), as
  explicit text and filter, and as natural questions with understanding on;
  targets p50 <= 6x, p95 <= 20x echo. Also: the cold first search, index
  build rate, bytes per pattern (memory target <= 4 KB) and the time until a
  restarted replica is SERVING (target <= 30 s). See search_figures.py.
- Opt-in (BENCH_MILLION=1): the same over 1,000,000 patterns; target p50 <= 20x.

BENCH_SEARCH_PATTERNS shrinks the search corpus for a quick run;
BENCH_MILLION_PATTERNS and BENCH_MILLION_SEARCHES the opt-in one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import memory_process
from memory_service.security.crypto import generate_key
from memory_service.security.identity import hash_token
from memory_service.servicekit.tls import ClientTls
from tests.bench.bulk_store import bulk_store
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
from tests.bench.search_corpus import NAMESPACE, SearchStore, variants
from tests.bench.search_figures import Target, search_report, serve_searches
from tests.support.redis_servers import standalone

STORES = int(os.environ.get("BENCH_STORES", "1000"))
CONCURRENCY = 64
THROUGHPUT_CALLS = int(os.environ.get("BENCH_THROUGHPUT_CALLS", "4000"))
SEARCHES = int(os.environ.get("BENCH_SEARCHES", "300"))
MILLION = os.environ.get("BENCH_MILLION", "") == "1"
MILLION_PATTERNS = int(os.environ.get("BENCH_MILLION_PATTERNS", "1000000"))
MILLION_SEARCHES = int(os.environ.get("BENCH_MILLION_SEARCHES", "100"))


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


async def test_memory_store_figures(tmp_path: Path) -> None:
    """StorePattern per backend (the method of the figures before issue 15, unchanged)."""
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
    report("bench_memory", rows, verdicts)


async def test_memory_search_figures(search_store: SearchStore, tmp_path: Path) -> None:
    """SearchPatterns, text AND a filter, over the session's store (100,000 patterns)."""
    with echo_server(tmp_path) as echo_address:
        echo = summary(await echo_samples(echo_address, 2000))
        served = await serve_searches(search_store, SEARCHES)
    rows, verdicts = search_report(search_store, echo, served, Target(p50=6, p95=20))
    report("bench_memory_search", {"bare gRPC echo": echo, **rows}, verdicts)


@pytest.mark.skipif(not MILLION, reason="opt-in: BENCH_MILLION=1 (see bulk_store.py)")
async def test_memory_search_million(tmp_path: Path) -> None:
    """The same over 1,000,000 patterns, written by the bulk loader; target p50 <= 20x."""
    store = bulk_store(tmp_path / "million", MILLION_PATTERNS)
    with echo_server(tmp_path) as echo_address:
        echo = summary(await echo_samples(echo_address, 2000))
        served = await serve_searches(store, MILLION_SEARCHES)
    rows, verdicts = search_report(store, echo, served, Target(p50=20))
    report("bench_memory_search_million", {"bare gRPC echo": echo, **rows}, verdicts)


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
