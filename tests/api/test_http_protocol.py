"""`ledger serve`'s HTTP protocol (api.http_protocol): each answer written in one piece.

The transport is driven on a real event loop over a transport that records its writes;
then a real uvicorn server with the protocol answers plain and streamed responses on one
keep-alive connection, byte for byte as HTTP/1.1 says.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from tests.conftest import free_port

from api.http_protocol import JOIN_BYTES_MAX, PROTOCOL, OneWriteTransport
from ledger import cli

STARTUP_SECONDS_MAX = 30


class Recorded:
    """A transport that keeps what is written to it, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 7


def on_a_loop(scenario: Any, recorded: Recorded | None = None) -> Recorded:
    """Run `scenario(transport)` (a coroutine function) on a fresh event loop, over
    `recorded` (a new one when not given)."""
    recorded = recorded or Recorded()

    async def run() -> None:
        await scenario(OneWriteTransport(recorded, asyncio.get_running_loop()))  # type: ignore[arg-type]

    asyncio.run(run())
    return recorded


def test_a_head_and_the_body_sent_right_after_it_go_out_in_one_write() -> None:
    async def answer(transport: OneWriteTransport) -> None:
        transport.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        await asyncio.sleep(0)

    assert on_a_loop(answer).writes == [
        b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"]


def test_a_lone_write_goes_out_when_the_loop_comes_round() -> None:
    seen: list[list[bytes]] = []

    async def answer(transport: OneWriteTransport) -> None:
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        seen.append(list(recorded.writes))
        await asyncio.sleep(0)
        seen.append(list(recorded.writes))

    recorded = Recorded()
    on_a_loop(answer, recorded)
    assert seen == [[], [b"HTTP/1.1 100 Continue\r\n\r\n"]]


def test_streamed_chunks_go_out_in_order_none_held_past_the_loops_turn() -> None:
    async def stream(transport: OneWriteTransport) -> None:
        transport.write(b"head")
        transport.write(b"one")
        transport.write(b"two")
        await asyncio.sleep(0)
        transport.write(b"three")
        await asyncio.sleep(0)

    assert on_a_loop(stream).writes == [b"headone", b"two", b"three"]


def test_what_is_held_is_written_before_the_transport_closes_or_ends() -> None:
    async def closing(transport: OneWriteTransport) -> None:
        transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        transport.close()
        await asyncio.sleep(0)

    closed = on_a_loop(closing)
    assert closed.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and closed.closed

    async def ending(transport: OneWriteTransport) -> None:
        transport.write(b"last")
        transport.write_eof()
        await asyncio.sleep(0)

    assert on_a_loop(ending).writes == [b"last", b"<eof>"]


def test_what_is_held_when_the_connection_goes_is_dropped_without_an_error() -> None:
    async def lost(transport: OneWriteTransport) -> None:
        transport.write(b"0\r\n\r\n")
        recorded.closed = True  # the client went away before the loop came round
        await asyncio.sleep(0)
        transport.close()

    recorded = Recorded()
    assert on_a_loop(lost, recorded).writes == []


def test_an_abort_drops_what_is_held() -> None:
    async def aborting(transport: OneWriteTransport) -> None:
        transport.write(b"never")
        transport.abort()
        await asyncio.sleep(0)

    aborted = on_a_loop(aborting)
    assert aborted.writes == [] and aborted.aborted


def test_large_writes_are_written_in_turn_not_joined() -> None:
    large = b"x" * JOIN_BYTES_MAX

    async def answer(transport: OneWriteTransport) -> None:
        transport.write(b"head")
        transport.write(large)
        await asyncio.sleep(0)

    assert on_a_loop(answer).writes == [b"head", large]


def test_the_held_bytes_count_in_the_write_buffer_and_the_rest_is_the_transports() -> None:
    sizes: list[Any] = []

    async def answer(transport: OneWriteTransport) -> None:
        transport.write(b"12345")
        sizes.append(transport.get_write_buffer_size())
        sizes.append(transport.is_closing())
        await asyncio.sleep(0)
        sizes.append(transport.get_write_buffer_size())

    on_a_loop(answer)
    assert sizes == [7 + 5, False, 7]


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in (b"alpha,", b"beta,", b"gamma"):
        yield chunk
        await asyncio.sleep(0)


async def _plain(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(b"echo:" + body, status_code=201)


async def _streamed(_: Request) -> StreamingResponse:
    return StreamingResponse(_chunks(), media_type="text/plain")


@pytest.fixture
def served() -> Iterator[int]:
    """A uvicorn server with the protocol `ledger serve` uses, in a thread; its port."""
    app = Starlette(routes=[Route("/plain", _plain, methods=["POST"]),
                            Route("/streamed", _streamed)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=PROTOCOL,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS_MAX
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS_MAX)


def _read_answer(connection: socket.socket, end: bytes) -> bytes:
    received = b""
    while not received.endswith(end):
        chunk = connection.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


def test_plain_and_streamed_answers_on_one_keep_alive_connection(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as connection:
        for body in (b"first", b"second"):
            connection.sendall(b"POST /plain HTTP/1.1\r\nHost: t\r\ncontent-length: %d\r\n\r\n%s"
                               % (len(body), body))
            answer = _read_answer(connection, b"echo:" + body)
            head, _, content = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 201 Created\r\n")
            assert b"content-length: %d" % len(b"echo:" + body) in head
            assert content == b"echo:" + body
        connection.sendall(b"GET /streamed HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = _read_answer(connection, b"0\r\n\r\n")
        head, _, content = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
        assert content == b"6\r\nalpha,\r\n5\r\nbeta,\r\n5\r\ngamma\r\n0\r\n\r\n"


def test_a_malformed_request_is_answered_and_the_connection_closed(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as connection:
        connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_ledger_serve_runs_uvicorn_with_this_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_, **options: calls.append(options))
    monkeypatch.setenv("LEDGER_DATABASE_URL", "sqlite:///:memory:")
    for workers in ("1", "2"):
        assert cli.main(["serve", "--workers", workers]) == 0
    assert [call["http"] for call in calls] == [PROTOCOL, PROTOCOL]
