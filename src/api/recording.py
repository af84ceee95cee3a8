"""Stock documents recorded from the event loop: queued for the group commit and awaited.

With group commit on, a receipt, dispatch, transfer or count without an idempotency key or
an effective time needs no database read before it joins the writer's queue. Its endpoint
(`async def`) queues it and awaits the writer's answer, with no thread of its own in
between: the writer's callback wakes the event loop. Every other command, and every
document that does need a read first, runs in FastAPI's thread pool as a plain `def`
endpoint would (docs/architecture.md, "Choices where the design was silent").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from starlette.concurrency import run_in_threadpool

from ledger.application import CommandResult, Ledger, StockDocument
from ledger.domain.context import CommandMeta
from ledger.group_commit import Pending


async def record(ledger: Ledger, document: StockDocument, meta: CommandMeta) -> CommandResult:
    """The document's result (or its error), once recorded."""
    queued = enqueue(ledger, document, meta)
    if queued is None:
        return await run_in_threadpool(ledger.record, document, meta)
    return await queued


def enqueue(ledger: Ledger, document: StockDocument,
            meta: CommandMeta) -> Awaitable[CommandResult] | None:
    """The document queued for the group commit, as an awaitable of its result (or error);
    None, with nothing queued, when it needs a database read first (`Ledger.enqueue`).
    Raises, with nothing queued, when the document fails its own checks."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[None] = loop.create_future()

    def wake() -> None:  # in the writer's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, answered)

    pending = ledger.enqueue(document, meta, wake)
    return None if pending is None else _outcome(pending, answered)


async def _outcome(pending: Pending, answered: asyncio.Future[None]) -> CommandResult:
    # Shielded: a client that goes away does not cancel the command, only our wait for it.
    await asyncio.shield(answered)
    return pending.outcome()


def _settle(answered: asyncio.Future[None]) -> None:
    if not answered.done():
        answered.set_result(None)
