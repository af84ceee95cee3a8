"""Reading and rewriting export files in tests (tampering, truncating, forging lines)."""

from __future__ import annotations

import json
from pathlib import Path


def export_lines(path: Path) -> tuple[str, list[dict[str, object]]]:
    """An export's header line and its records, parsed."""
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    return header, [json.loads(line) for line in lines]


def write_export(path: Path, header: str, entries: list[dict[str, object]]) -> None:
    """Write an export's header and records back (as edited)."""
    path.write_text("\n".join([header, *(json.dumps(entry) for entry in entries)]) + "\n",
                    encoding="utf-8")
