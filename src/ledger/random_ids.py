"""Random (version 4) UUIDs for document and correlation ids, drawn from a buffer.

`uuid.uuid4()` calls `os.urandom(16)`, and CPython releases the interpreter lock around
the `getrandom` system call it makes. In the API server that happens on the event loop's
thread twice per command (the document id, the correlation id): each time, the group-commit
writer or a pool thread may take the lock, and the event loop waits for it to be handed
back (up to the 5 ms switch interval). py-spy put 13% of the server's samples on that one
line under 16 writing clients. Here the operating system's randomness is read 4 KiB at a
time (one system call per 256 ids) and cut into ids; the ids are as random as `uuid4`'s,
from the same source. A forked child starts on a buffer of its own.
"""

from __future__ import annotations

import os
import threading
from uuid import UUID

_IDS_PER_READ = 256
_ID_BYTES = 16


class RandomIds:
    """A source of version 4 UUIDs: each call returns a new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def __call__(self) -> UUID:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer = os.urandom(_ID_BYTES * _IDS_PER_READ)
                self._offset = 0
            start = self._offset
            self._offset = start + _ID_BYTES
            raw = self._buffer[start:start + _ID_BYTES]
        return UUID(bytes=raw, version=4)

    def forget(self) -> None:
        """Drop what is buffered (a forked child must not hand out its parent's ids)."""
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0


new_id = RandomIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=new_id.forget)
