"""`ledger serve`'s HTTP protocol: uvicorn's httptools protocol, each answer written at once.

uvicorn writes a response's head when the app sends `http.response.start` and its body when
the app sends `http.response.body`, and uvloop writes each to the socket on the spot: two
system calls per answer, and on the client's side two wake-ups, the first for a head alone
(strace of `ledger serve` under the benchmark's load: a 131-byte write, then a 234-byte
one, for every command). `OneWriteHttpToolsProtocol` hands uvicorn's request cycles a
transport that holds a write back until the next one, or until the event loop comes round
again: a head and the body sent right after it go out together, and nothing waits longer
than the loop's current turn (a streamed body's chunks go out as they come). Everything
else is uvicorn's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Past this, a held write and the next one are written in turn rather than joined: joining
# copies, and a chunk this large is worth its own system call.
JOIN_BYTES_MAX = 64 * 1024


class OneWriteTransport:
    """A transport that joins a write to the one after it (see the module's docstring);
    every other attribute is the wrapped transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.release)
            return
        self._held = None
        if len(held) + len(data) <= JOIN_BYTES_MAX:
            self._transport.write(held + bytes(data))
        else:
            self._transport.write(held)
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def release(self) -> None:
        """Write what is held back, if anything, unless the connection has closed meanwhile
        (uvloop refuses a write once the connection is gone, where uvicorn writes nothing)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (0 if held is None else len(held))

    def write_eof(self) -> None:
        self.release()
        self._transport.write_eof()

    def close(self) -> None:
        self.release()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose request cycles write through `OneWriteTransport`
    (flow control and the connection's addresses stay on the socket's own transport)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = OneWriteTransport(transport, self.loop)  # type: ignore[assignment]


PROTOCOL = f"{__name__}:OneWriteHttpToolsProtocol"
