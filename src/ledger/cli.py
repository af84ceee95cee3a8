"""The `ledger` command: serve the API, load demo data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ledger.config import ConfigurationError, Settings, event_store_environment


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.http_protocol import PROTOCOL

    settings = Settings.from_environ()  # refused here, before any worker starts, if invalid
    if arguments.workers == 1:
        uvicorn.run(create_app(settings, server=True), host=arguments.host,
                    port=arguments.port, log_level=arguments.log_level, http=PROTOCOL)
    else:
        # Each worker process builds its own app (its own group committer and, when embedded,
        # projection runner; runners take turns on the projections' state rows).
        uvicorn.run("api.app:create_server_app", factory=True, workers=arguments.workers,
                    host=arguments.host, port=arguments.port, log_level=arguments.log_level,
                    http=PROTOCOL)
    return 0


def _demo(_: argparse.Namespace) -> int:
    from ledger import demo
    from ledger.application import Ledger

    settings = Settings.from_environ()
    with Ledger(event_store_environment(settings)) as ledger:
        appended = demo.load(ledger)
        print(f"demo data: {appended} commands appended, head position "
              f"{ledger.head_position()}")
    return 0


def _read_side(arguments: argparse.Namespace) -> int:
    import logging

    from ledger.application import Ledger
    from ledger.config import project_gather_seconds, read_models_url
    from ledger.gc_pause import freeze_long_lived
    from projections import registry
    from projections.rebuild import RebuildRunning, rebuild
    from projections.service import ReadModels
    from projections.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_environ()
    names = registry.select(getattr(arguments, "names", []) or [])
    with Ledger(event_store_environment(settings)) as ledger:
        read_models = ReadModels.open(read_models_url(settings))
        try:
            if arguments.command == "project":
                freeze_long_lived()  # a long-running worker: see ledger.gc_pause
                run_worker(read_models, ledger.recorder, ledger.mapper, [p.name for p in names],
                           gather_seconds=project_gather_seconds(settings))
            elif arguments.command == "rebuild":
                try:
                    states = rebuild(read_models.database, ledger.recorder, ledger.mapper,
                                     names, helpers=_rebuild_helpers(settings))
                except RebuildRunning as error:
                    print(f"ledger: {error}", file=sys.stderr)
                    return 3
                for name, state in states.items():
                    print(f"{name}: rebuilt as generation {state.generation} at position "
                          f"{state.position}")
            _print_status(read_models, ledger.head_position())
        finally:
            read_models.close()
    return 0


def _rebuild_helpers(settings: Settings) -> Any:
    """How `ledger rebuild` shares the log's aggregates out (`projections.rebuild_helpers`)."""
    from functools import partial

    from ledger.config import read_models_url, rebuild_processes
    from projections.rebuild_helpers import Helpers

    return Helpers(rebuild_processes(settings), partial(
        open_rebuild_sources, event_store_environment(settings), read_models_url(settings)))


@contextmanager
def open_rebuild_sources(store: Mapping[str, str], read_url: str) -> Iterator[Any]:
    """What a rebuild helper process reads and writes: the read-model database, and the event
    store's recorder and mapper (a ledger of its own, without group commit).

    A helper creates no tables: the ledger that started it has, and helpers starting
    together would each run the library's `CREATE ... IF NOT EXISTS` statements at once,
    which PostgreSQL can refuse ("tuple concurrently updated")."""
    from ledger.application import Ledger
    from projections.database import connect

    with Ledger({**store, "CREATE_TABLE": "false"}) as ledger:
        database = connect(read_url)
        try:
            yield database, ledger.recorder, ledger.mapper
        finally:
            database.dispose()


def _print_status(read_models: Any, head: int) -> None:
    print(f"{'projection':<14} {'generation':>10} {'position':>10} {'head':>10} {'lag':>8}  digest")
    for status in read_models.status():
        lag = max(0, head - status.position)
        print(f"{status.name:<14} {status.generation:>10} {status.position:>10} {head:>10} "
              f"{lag:>8}  {status.digest}")


def _setup_db(arguments: argparse.Namespace) -> int:
    from ledger.setup_db import Roles, setup_database

    settings = Settings.from_environ()
    roles = Roles(arguments.owner, arguments.service, arguments.service_password)
    schema = setup_database(settings.database_url, roles)
    print(f"schema {schema}: events owned by {roles.owner}; {roles.service} may SELECT and "
          "INSERT, never UPDATE, DELETE or TRUNCATE. Run the service as "
          f"{roles.service} with ?schema={schema} and LEDGER_CREATE_TABLES=false.")
    return 0


def _audit_parsers(commands: Any) -> None:
    from ledger import audit_commands as audit

    verify = commands.add_parser("verify", help="recompute the hash chain and check it")
    verify.add_argument("--digest", help="a digest kept outside the system: POSITION:HASH")
    verify.add_argument("--export", help="verify an export file offline instead of the store")
    verify.set_defaults(run=audit.run_verify)
    export = commands.add_parser("export", help="write the event log as JSON Lines")
    export.add_argument("--to", required=True, help="the file to write")
    export.set_defaults(run=audit.run_export)
    load = commands.add_parser("import", help="load an export into an empty store")
    load.add_argument("file")
    load.set_defaults(run=audit.run_import)
    replay = commands.add_parser("replay", help="rebuild the read models as of a position")
    replay.add_argument("--to", type=int, required=True, help="the last position to apply")
    replay.add_argument("--schema", help="scratch schema (PostgreSQL)")
    replay.add_argument("--file", help="scratch file (SQLite)")
    replay.set_defaults(run=audit.run_replay)
    setup = commands.add_parser("setup-db", help="create a locked-down PostgreSQL event store")
    setup.add_argument("--owner", default="ledger_owner", help="role owning the event tables")
    setup.add_argument("--service", default="ledger_service", help="role the service runs as")
    setup.add_argument("--service-password", help="password for the service role")
    setup.set_defaults(run=_setup_db)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ledger", description="The inventory ledger.")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--workers", type=_positive, default=1,
                       help="API processes (default 1; one per core for throughput)")
    serve.set_defaults(run=_serve)
    demo = commands.add_parser("demo", help="load the demo data set (idempotent)")
    demo.set_defaults(run=_demo)
    project = commands.add_parser("project", help="run projections as a worker process")
    project.add_argument("names", nargs="*", help="projections (default: all)")
    project.set_defaults(run=_read_side)
    rebuild = commands.add_parser("rebuild", help="rebuild read models from position zero")
    rebuild.add_argument("names", nargs="*", help="projections (default: all)")
    rebuild.set_defaults(run=_read_side)
    status = commands.add_parser("status", help="each projection's position, lag and digest")
    status.set_defaults(run=_read_side)
    _audit_parsers(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        result: int = arguments.run(arguments)
    except (ConfigurationError, ValueError) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
