"""`CommandRecord`: an idempotency key, saved atomically with the command's events.

Its id is derived from (actor, key), so a second command with the same key
collides on version 1 in the same transaction as its other events: either the
whole command is recorded once, or nothing of it is.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from ledger.domain.identity import command_record_id


class CommandRecord(Aggregate):
    """The fingerprint of an accepted command and the result its caller got."""

    TOPIC = "ledger:CommandRecord"

    class Event(Aggregate.Event):
        TOPIC = "ledger:CommandRecord.Event"

    class Recorded(Aggregate.Created):
        TOPIC = "ledger:CommandRecord.Recorded"
        actor: str
        idempotency_key: str
        command: str
        fingerprint: str
        result: dict[str, Any]

    def __init__(self, actor: str, idempotency_key: str, command: str, fingerprint: str,
                 result: dict[str, Any]) -> None:
        self.actor = actor
        self.idempotency_key = idempotency_key
        self.command = command
        self.fingerprint = fingerprint
        self.result = result

    @classmethod
    def record(cls, actor: str, idempotency_key: str, command: str, fingerprint: str,
               result: dict[str, Any]) -> CommandRecord:
        return cls._create(cls.Recorded, id=command_record_id(actor, idempotency_key),
                           actor=actor, idempotency_key=idempotency_key, command=command,
                           fingerprint=fingerprint, result=result)
