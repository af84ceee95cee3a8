"""The auditors' commands: verify, export, import, replay (wired into `ledger`)."""

from __future__ import annotations

import argparse
from itertools import tee
from pathlib import Path

from ledger.application import SNAPSHOT_INTERVAL, Ledger
from ledger.chain import Digest, Verdict, verify
from ledger.config import Settings, event_store_environment
from ledger.export import (
    ExportTampered,
    ImportRefused,
    StoreNotEmpty,
    bin_replays,
    bins_to_snapshot,
    export,
    load_export,
    read_export,
    read_header,
    records,
)
from ledger.gc_pause import gc_paused


def run_verify(arguments: argparse.Namespace) -> int:
    """Recompute the chain (from the store, or offline from an export) and report."""
    kept = Digest.parse(arguments.digest) if arguments.digest else None
    if arguments.export:
        with Path(arguments.export).open(encoding="utf-8") as source:
            # Streamed: verify takes a record, then the link beside it, so the two views of
            # the file stay at most one line apart (an export of millions of events is fine).
            for_records, for_links = tee(read_export(source))
            verdict = verify((record for record, _ in for_records),
                             ((record.position, link) for record, link in for_links), kept)
    else:
        verdict = _verify_store(Settings.from_environ(), kept)
    return _report(verdict)


def _verify_store(settings: Settings, kept: Digest | None) -> Verdict:
    from ledger.config import read_models_url
    from projections.service import ReadModels

    with Ledger(event_store_environment(settings)) as ledger:
        read_models = ReadModels.open(read_models_url(settings))
        try:
            recorded = read_models.chain_links()
            return verify(records(ledger.recorder), recorded, kept)
        finally:
            read_models.close()


def _report(verdict: Verdict) -> int:
    print(f"events checked: {verdict.events_checked}")
    print(f"head digest:    {verdict.head}")
    if verdict.ok:
        print("verified: the chain matches")
        return 0
    print(f"TAMPERED: {verdict.problem}")
    return 1


def run_export(arguments: argparse.Namespace) -> int:
    settings = Settings.from_environ()
    with Ledger(event_store_environment(settings)) as ledger:
        head = export(ledger.recorder, Path(arguments.to))
    print(f"exported to {arguments.to}; head digest {head}")
    return 0


def run_import(arguments: argparse.Namespace) -> int:
    """Load an export into an empty store, verifying its chain as it is read (nothing is
    written unless every line verifies), then snapshot the bins with long histories."""
    path = Path(arguments.file)
    with path.open("rb") as source:
        read_header(source)  # a file that is not an export is refused before the store is opened
    settings = Settings.from_environ()
    with Ledger(event_store_environment(settings)) as ledger, gc_paused():
        try:
            # The bins with long histories are replayed as they load (import_replay).
            replays = bin_replays(ledger.mapper, ledger.stored_snapshot, SNAPSHOT_INTERVAL)
            imported = load_export(ledger.recorder, path, replays)
        except ExportTampered as error:
            print(f"refused: the export does not verify: {error}")
            return 1
        except StoreNotEmpty as error:
            print(f"refused: {error}")
            return 1
        # Imported events took no snapshots: take them now for the bins with long histories.
        snapshots = ledger.snapshot_bins(bins_to_snapshot(imported.bins), replays.snapshots())
    print(f"imported {imported.count} events ({snapshots} bin snapshots); "
          f"head digest {imported.head}")
    return 0


def run_replay(arguments: argparse.Namespace) -> int:
    """Rebuild every read model as it stood at a position, into a scratch schema or file."""
    from ledger.config import read_models_url
    from projections.database import place
    from projections.service import ReadModels

    settings = Settings.from_environ()
    target = scratch_url(settings.database_url, arguments.schema, arguments.file)
    # The scratch target is erased first: it must be neither the events nor the live models.
    if place(target) in (place(settings.database_url), place(read_models_url(settings))):
        print("refused: the scratch target is the event store or the live read models")
        return 2
    with Ledger(event_store_environment(settings)) as ledger:
        read_models = ReadModels.open(target, fresh=True)
        try:
            runner = read_models.runner(ledger.recorder, ledger.mapper)
            runner.stop_at = arguments.to
            runner.catch_up()
            print(f"replayed to position {arguments.to} into {target}")
            for status in read_models.status():
                print(f"{status.name:<14} {status.position:>10}  {status.digest}")
        finally:
            read_models.close()
    return 0


def scratch_url(database_url: str, schema: str | None, file: str | None) -> str:
    """Where a replay goes: a schema beside a PostgreSQL store, or a SQLite file."""
    if file:
        return f"sqlite:///{file}"
    if not schema:
        raise ImportRefused("name a scratch --schema (PostgreSQL) or --file (SQLite)")
    if database_url.startswith("sqlite:"):
        stem = database_url[:-3] if database_url.endswith(".db") else database_url
        return f"{stem}.replay-{schema}.db"
    base = database_url.split("?", 1)[0]
    return f"{base}?schema={schema}"
