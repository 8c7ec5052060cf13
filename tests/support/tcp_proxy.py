"""A TCP proxy that can break its clients' connections, for tests of re-attaching.

`cut_clients` ends every open connection on the client's side (a FIN, so
what was forwarded is still read) while the connection to the server stays
open and drained: a network loss the server has not noticed, so the server
goes on with the call (a run is not cancelled) while its client sees the
connection gone. New connections are proxied as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    cut: bool = False


@dataclass
class TcpProxy:
    """Listens on 127.0.0.1 and forwards to `target_port`."""

    target_port: int
    port: int = 0
    # Every byte sent to clients so far: a test waits for what it knows is in there.
    downstream: bytearray = field(default_factory=bytearray)
    _links: list[_Link] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _server: asyncio.Server | None = None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        link = _Link(writer, upstream_writer)
        self._links.append(link)
        for pump in (self._up(reader, link), self._down(upstream_reader, link)):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _up(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(ConnectionError):
            while (data := await reader.read(65536)) and not link.cut:
                link.server.write(data)
                await link.server.drain()
        if not link.cut:
            link.server.close()

    async def _down(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if link.cut:
                    continue  # Drained, so the server is never held up.
                self.downstream += data
                link.client.write(data)
                await link.client.drain()
        with contextlib.suppress(ConnectionError):
            link.client.close()

    def cut_clients(self) -> None:
        """Ends every open connection on the client's side only."""
        for link in self._links:
            if not link.cut:
                link.cut = True
                link.client.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            link.server.close()
            link.client.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
