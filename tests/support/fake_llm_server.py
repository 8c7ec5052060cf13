"""A scripted model-API server on 127.0.0.1 for runner tests.

Each POST gets the next scripted response (the last one repeats) and is
recorded with its headers, JSON body and arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

# How long a hanging response holds its connection if the test never releases it.
_HANG_LIMIT_SECONDS = 10.0


@dataclass(frozen=True)
class Scripted:
    """One response: a JSON body (bytes are sent as they are), or a hang."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it; header names are lower-case."""

    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival
    peer: tuple[str, int] = ("", 0)  # The client's address: one per TCP connection.


class _Server(ThreadingHTTPServer):
    # Handler threads end when their client closes; never block shutdown on them.
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.script: list[Scripted] = []
        self.served = 0
        self.requests: list[Recorded] = []
        self.closed: set[tuple[str, int]] = set()  # Peers whose connection ended.
        self.release = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # Headers and body go in separate small writes.
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        server = self.server
        with server.lock:
            server.requests.append(
                Recorded(
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    peer=(str(self.client_address[0]), int(self.client_address[1])),
                    at=time.monotonic(),
                )
            )
            index = min(server.served, len(server.script) - 1)
            server.served += 1
            response = server.script[index]
        if response.hang:
            server.release.wait(_HANG_LIMIT_SECONDS)
            self.close_connection = True
            return
        payload = (
            response.body
            if isinstance(response.body, bytes)
            else json.dumps(response.body).encode()
        )
        self.send_response(response.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.closed.add((str(self.client_address[0]), int(self.client_address[1])))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests` instead."""


class FakeLLMServer:
    """Start with `with FakeLLMServer() as server:`; script it before each call."""

    def __init__(self) -> None:
        self._server = _Server()
        # A short poll interval keeps shutdown() quick; it is not a synchronisation sleep.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._server.lock:
            return list(self._server.requests)

    def closed(self) -> set[tuple[str, int]]:
        """The peers (see Recorded.peer) whose connection has ended."""
        with self._server.lock:
            return set(self._server.closed)

    def script(self, *responses: Scripted) -> None:
        """Responses for the next requests, in order; the last one repeats."""
        with self._server.lock:
            self._server.script = list(responses)
            self._server.served = 0

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def anthropic_message(text: str, usage: tuple[int, int] | None = (1000, 200)) -> dict[str, Any]:
    """A Messages API answer carrying the text."""
    body: dict[str, Any] = {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
    }
    if usage is not None:
        body["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
    return body


def openai_completion(text: str, usage: tuple[int, int] | None = (1000, 200)) -> dict[str, Any]:
    """A Chat Completions answer carrying the text."""
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "gpt-5-mini-2025-08-07",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body
