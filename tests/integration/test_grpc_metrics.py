"""The gRPC server metrics of a real grpc.aio server (ManagedServer, port 0),
scraped over HTTP from its metrics port: every handler kind, every way a
call ends, in-flight calls, and no endpoint at all when no port is set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from memory_service.servicekit.errors import invalid_argument
from memory_service.servicekit.lifecycle import ManagedServer
from memory_service.servicekit.metrics import ServiceMetrics
from memory_service.servicekit.settings import ServerSettings
from tests.support.helpers import code_of, eventually
from tests.support.scrape import Scrape, scrape

SERVICE = "test.v1.Probe"
Context = grpc.aio.ServicerContext[Any, Any]


class Probe:
    """A tiny servicer over raw bytes: each method ends its call one way."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()

    async def ok(self, request: bytes, context: Context) -> bytes:
        return request

    async def invalid(self, request: bytes, context: Context) -> bytes:
        raise invalid_argument([("field", "bad")])

    async def missing(self, request: bytes, context: Context) -> bytes:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        raise AssertionError("abort returns no more")

    async def boom(self, request: bytes, context: Context) -> bytes:
        raise RuntimeError("a bug")

    async def later(self, request: bytes, context: Context) -> bytes:
        raise NotImplementedError

    async def set_code(self, request: bytes, context: Context) -> bytes:
        context.set_code(grpc.StatusCode.ALREADY_EXISTS)
        context.set_details("there already")
        return b""

    async def block(self, request: bytes, context: Context) -> bytes:
        self.blocked.set()
        await self.release.wait()
        return b"done"

    async def stream(self, request: bytes, context: Context) -> AsyncIterator[bytes]:
        for item in (b"a", b"b", b"c"):
            yield item

    async def endless(self, request: bytes, context: Context) -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.Event().wait()  # Until the client cancels.

    async def echo(self, requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    def register(self, server: grpc.aio.Server) -> None:
        unary = {
            "Ok": self.ok,
            "Invalid": self.invalid,
            "Missing": self.missing,
            "Boom": self.boom,
            "Later": self.later,
            "SetCode": self.set_code,
            "Block": self.block,
        }
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            name: grpc.unary_unary_rpc_method_handler(behaviour)
            for name, behaviour in unary.items()
        }
        handlers["Stream"] = grpc.unary_stream_rpc_method_handler(self.stream)
        handlers["Endless"] = grpc.unary_stream_rpc_method_handler(self.endless)
        handlers["Echo"] = grpc.stream_stream_rpc_method_handler(self.echo)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


async def _ready() -> bool:
    return True


@asynccontextmanager
async def probe_server(settings: ServerSettings) -> AsyncIterator[tuple[ManagedServer, Probe]]:
    probe = Probe()
    managed = ManagedServer(settings, SERVICE, probe.register, _ready, metrics=ServiceMetrics())
    await managed.start()
    try:
        yield managed, probe
    finally:
        probe.release.set()
        await managed.stop()


def rpc(channel: grpc.aio.Channel, kind: str, name: str) -> Any:
    """A multi-callable of the probe service over raw bytes."""
    return getattr(channel, kind)(f"/{SERVICE}/{name}")


def labels(method: str, grpc_type: str = "unary", service: str = SERVICE) -> dict[str, str]:
    return {"grpc_service": service, "grpc_method": method, "grpc_type": grpc_type}


async def test_every_call_is_counted_by_method_type_and_final_code(tmp_path: Path) -> None:
    port_file = tmp_path / "metrics.port"
    settings = ServerSettings(port=0, metrics_port=0, metrics_port_file=port_file)
    async with probe_server(settings) as (managed, _):
        assert managed.metrics_port > 0
        assert port_file.read_text() == f"{managed.metrics_port}\n"
        url = f"http://127.0.0.1:{managed.metrics_port}/metrics"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{managed.port}") as channel:

            def unary(name: str) -> Any:
                return rpc(channel, "unary_unary", name)

            expected = {
                "Ok": grpc.StatusCode.OK,
                "Invalid": grpc.StatusCode.INVALID_ARGUMENT,
                "Missing": grpc.StatusCode.NOT_FOUND,
                "Boom": grpc.StatusCode.INTERNAL,
                "Later": grpc.StatusCode.UNIMPLEMENTED,
                "SetCode": grpc.StatusCode.ALREADY_EXISTS,
            }
            for name, code in expected.items():
                assert await code_of(unary(name)(b"x", timeout=5)) == code, name
            assert await code_of(unary("Ok")(b"y", timeout=5)) == grpc.StatusCode.OK
            # A method nobody registered: gRPC's UNIMPLEMENTED, counted nowhere.
            nowhere = unary("Nowhere")(b"x", timeout=5)
            assert await code_of(nowhere) == grpc.StatusCode.UNIMPLEMENTED

            streamed = [item async for item in rpc(channel, "unary_stream", "Stream")(b"")]
            assert streamed == [b"a", b"b", b"c"]
            endless = rpc(channel, "unary_stream", "Endless")(b"")
            assert await endless.read() == b"first"
            endless.cancel()

            async def requests() -> AsyncIterator[bytes]:
                for item in (b"1", b"2"):
                    yield item

            echoed = [item async for item in rpc(channel, "stream_stream", "Echo")(requests())]
            assert echoed == [b"1", b"2"]

            reflection = channel.stream_stream(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            answers = [
                answer
                async for answer in reflection(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                )
            ]
            assert SERVICE in {s.name for s in answers[0].list_services_response.service}

            # The cancelled stream ends on the server a moment after the client left.
            endless_labels = labels("Endless", "server_stream")

            async def scraped() -> Scrape:
                return await scrape(url)

            done = await eventually(
                scraped,
                lambda s: (
                    s.value("grpc_server_handled_total", **endless_labels, grpc_code="CANCELLED")
                    == 1
                ),
            )

        for name, code in expected.items():
            want = 2 if name == "Ok" else 1
            assert done.value("grpc_server_started_total", **labels(name)) == want, name
            handled = done.value("grpc_server_handled_total", **labels(name), grpc_code=code.name)
            assert handled == want, name
            assert done.total("grpc_server_handled_total", **labels(name)) == want, name
            assert done.value("grpc_server_handling_seconds_count", **labels(name)) == want
        assert done.total("grpc_server_started_total", grpc_method="Nowhere") == 0
        stream = labels("Stream", "server_stream")
        assert done.value("grpc_server_handled_total", **stream, grpc_code="OK") == 1
        assert done.value("grpc_server_started_total", **endless_labels) == 1
        assert done.total("grpc_server_handled_total", **endless_labels) == 1
        assert (
            done.value("grpc_server_handled_total", **labels("Echo", "bidi_stream"), grpc_code="OK")
            == 1
        )
        reflected = labels(
            "ServerReflectionInfo", "bidi_stream", "grpc.reflection.v1alpha.ServerReflection"
        )
        assert done.value("grpc_server_handled_total", **reflected, grpc_code="OK") == 1
        for method in ("Ok", "Stream", "Endless", "Echo"):
            in_flight = {"grpc_service": SERVICE, "grpc_method": method}
            assert done.value("grpc_server_in_flight_requests", **in_flight) == 0
        # 6 unary methods (Ok twice), Stream, Endless and Echo once each.
        assert done.total("grpc_server_handled_total", grpc_service=SERVICE) == 10


async def test_a_call_in_progress_is_in_flight_until_it_ends(tmp_path: Path) -> None:
    settings = ServerSettings(port=0, metrics_port=0)
    async with probe_server(settings) as (managed, probe):
        url = f"http://127.0.0.1:{managed.metrics_port}/metrics"
        in_flight = {"grpc_service": SERVICE, "grpc_method": "Block"}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{managed.port}") as channel:
            call = rpc(channel, "unary_unary", "Block")(b"", timeout=10)
            await asyncio.wait_for(probe.blocked.wait(), 10)
            during = await scrape(url)
            assert during.value("grpc_server_in_flight_requests", **in_flight) == 1
            assert during.value("grpc_server_started_total", **labels("Block")) == 1
            assert during.total("grpc_server_handled_total", **labels("Block")) == 0
            probe.release.set()
            assert await call == b"done"
        after = await scrape(url)
        assert after.value("grpc_server_in_flight_requests", **in_flight) == 0
        assert after.value("grpc_server_handled_total", **labels("Block"), grpc_code="OK") == 1


async def test_health_checks_are_counted_too(tmp_path: Path) -> None:
    async with probe_server(ServerSettings(port=0, metrics_port=0)) as (managed, _):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{managed.port}") as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)
            await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
            unknown = health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert await code_of(unknown) == grpc.StatusCode.NOT_FOUND
        done = await scrape(f"http://127.0.0.1:{managed.metrics_port}/metrics")
        check = labels("Check", "unary", "grpc.health.v1.Health")
        assert done.value("grpc_server_handled_total", **check, grpc_code="OK") == 1
        assert done.value("grpc_server_handled_total", **check, grpc_code="NOT_FOUND") == 1


async def test_the_endpoint_stops_with_the_server(tmp_path: Path) -> None:
    async with probe_server(ServerSettings(port=0, metrics_port=0)) as (managed, _):
        url = f"http://127.0.0.1:{managed.metrics_port}/metrics"
        assert "grpc_server_started_total" in (await scrape(url)).families
    with pytest.raises(OSError, match="refused"):  # Nothing listens there now.
        await scrape(url)


async def test_no_metrics_port_means_no_endpoint_and_no_port_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port_file = tmp_path / "metrics.port"
    caplog.set_level(logging.INFO, logger="attune.server")
    settings = ServerSettings(port=0, metrics_port_file=port_file)
    async with probe_server(settings) as (managed, _):
        assert managed.metrics_endpoint is None
        assert managed.metrics_port == 0
        assert not port_file.exists()
        assert not [r for r in caplog.records if r.getMessage() == "serving metrics"]
        # The calls are still counted in the registry, for a later endpoint or a test.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{managed.port}") as channel:
            await rpc(channel, "unary_unary", "Ok")(b"x", timeout=5)
        assert (
            managed.metrics.registry.get_sample_value("grpc_server_started_total", labels("Ok"))
            == 1
        )


async def test_a_taken_metrics_port_stops_the_start(tmp_path: Path) -> None:
    async with probe_server(ServerSettings(port=0, metrics_port=0)) as (first, _):
        taken = ServerSettings(port=0, metrics_port=first.metrics_port)
        with pytest.raises(RuntimeError, match="could not bind metrics"):
            async with probe_server(taken):
                pass
