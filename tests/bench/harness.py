"""Shared benchmark plumbing: processes, the echo baseline, percentiles, reports."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from memory_service.servicekit.tls import ClientTls
from tests.bench.echo_server import METHOD, STREAM_METHOD
from tests.support.tls_certs import SERVER_NAME, CertificateAuthority, Issued

RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"


def percentile(samples: list[float], fraction: float) -> float:
    """The fraction-quantile of samples (inclusive method)."""
    return statistics.quantiles(samples, n=100, method="inclusive")[round(fraction * 100) - 1]


def summary(samples: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds, and the sample count."""
    return {
        "p50_ms": percentile(samples, 0.50) * 1000,
        "p95_ms": percentile(samples, 0.95) * 1000,
        "n": float(len(samples)),
    }


def channel(address: str, tls: ClientTls | None = None) -> grpc.aio.Channel:
    """A channel to address: plaintext, or TLS as `tls` says."""
    if tls is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, tls.credentials(), options=tls.options())


@contextmanager
def echo_server(tmp: Path, tls_files: tuple[Path, Path] | None = None) -> Iterator[str]:
    """The echo server as its own process (over TLS with a cert and key); yields its address."""
    port_file = tmp / ("echo-tls.port" if tls_files else "echo.port")
    extra = [str(path) for path in tls_files or ()]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.echo_server", str(port_file), *extra]
    )
    try:
        deadline = time.monotonic() + 20
        # The file may exist before its port is written: wait for the line.
        while not (port_file.exists() and port_file.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "echo server did not start"
            time.sleep(0.01)
        yield f"127.0.0.1:{int(port_file.read_text())}"
    finally:
        child.kill()
        child.wait()


async def time_calls(call: Callable[[], Awaitable[Any]], count: int, warmup: int) -> list[float]:
    """Seconds per call, one at a time, after a warm-up."""
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def echo_samples(
    address: str, count: int, payload: bytes = b"x" * 64, tls: ClientTls | None = None
) -> list[float]:
    """Round-trip times of the bare echo."""
    async with channel(address, tls) as open_channel:
        echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = open_channel.unary_unary(METHOD)

        async def call() -> bytes:
            response: bytes = await echo(payload, timeout=10)
            return response

        return await time_calls(call, count, warmup=100)


async def stream_samples(address: str, messages: int, count: int) -> list[float]:
    """Times of a bare server stream of `messages` messages, read to the end."""
    async with grpc.aio.insecure_channel(address) as channel:
        stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            STREAM_METHOD
        )

        async def call() -> None:
            async for _ in stream(b"x" * messages, timeout=10):
                pass

        return await time_calls(call, count, warmup=20)


def report(name: str, rows: dict[str, dict[str, float]], verdicts: dict[str, str]) -> None:
    """Prints a table and writes results/<name>.json."""
    print(f"\n{name}")
    print(f"{'measure':<40} {'p50 ms':>10} {'p95 ms':>10} {'n':>6}")
    for label, row in rows.items():
        print(f"{label:<40} {row['p50_ms']:>10.3f} {row['p95_ms']:>10.3f} {int(row['n']):>6}")
    for label, verdict in verdicts.items():
        print(f"{label}: {verdict}")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(
        json.dumps({"rows": rows, "verdicts": verdicts}, indent=2) + "\n"
    )


@dataclass(frozen=True)
class MutualTls:
    """A throwaway CA's server and client material for a benchmark."""

    ca: CertificateAuthority
    server: Issued
    client: Issued
    tls: ClientTls  # What a client presents and trusts.
    served: dict[str, str]  # A server's *_TLS_* settings, without the prefix.


def mutual_tls(tmp: Path) -> MutualTls:
    """A CA under tmp, a server and a client certificate, and the settings serving them."""
    ca = CertificateAuthority(tmp / "pki")
    server, client = ca.server(), ca.client()
    served = {
        "TLS_CERT_FILE": str(server.cert),
        "TLS_KEY_FILE": str(server.key),
        "TLS_CLIENT_CA_FILE": str(ca.cert),
    }
    tls = ClientTls(ca.cert_pem, client.cert_pem, client.key_pem, SERVER_NAME)
    return MutualTls(ca, server, client, tls, served)
