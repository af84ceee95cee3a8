"""API keys and roles: `LEDGER_API_KEYS` is `key:role[:name],…`; keys compare in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from ledger.config import ConfigurationError


class Role(StrEnum):
    operations = "operations"
    finance = "finance"
    auditor = "auditor"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the role a key grants and the actor recorded on events."""

    role: Role
    actor: str


@dataclass(frozen=True)
class _Key:
    digest: bytes
    principal: Principal


class KeyRing:
    """The configured keys. Only SHA-256 digests are kept, so a key is never logged."""

    def __init__(self, keys: list[_Key]) -> None:
        self._keys = keys

    @classmethod
    def parse(cls, configured: str) -> KeyRing:
        keys = []
        for entry in filter(None, (part.strip() for part in configured.split(","))):
            key, _, rest = entry.partition(":")
            role_name, _, name = rest.partition(":")
            if not key or role_name not in Role.__members__:
                raise ConfigurationError(
                    "LEDGER_API_KEYS is a comma-separated list of key:role[:name] with role "
                    f"one of {', '.join(Role.__members__)}."
                )
            digest = hashlib.sha256(key.encode()).digest()
            actor = name or f"{role_name}-{digest.hex()[:8]}"
            keys.append(_Key(digest, Principal(Role(role_name), actor)))
        return cls(keys)

    def authenticate(self, presented: str) -> Principal | None:
        """The principal for a presented key; every configured key is compared, in constant time."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for key in self._keys:
            if hmac.compare_digest(key.digest, digest):
                found = key.principal
        return found


READ = frozenset(Role)
OPERATE = frozenset({Role.operations, Role.admin})
FINANCE = frozenset({Role.finance, Role.admin})
