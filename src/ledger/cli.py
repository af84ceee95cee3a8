"""The `ledger` command: serve the API, load demo data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ledger.config import ConfigurationError, Settings, store_environment


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    app = create_app(Settings.from_environ())
    uvicorn.run(app, host=arguments.host, port=arguments.port, log_level=arguments.log_level)
    return 0


def _demo(_: argparse.Namespace) -> int:
    from ledger import demo
    from ledger.application import Ledger

    settings = Settings.from_environ()
    with Ledger(store_environment(settings.database_url)) as ledger:
        appended = demo.load(ledger)
        print(f"demo data: {appended} commands appended, head position "
              f"{ledger.head_position()}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ledger", description="The inventory ledger.")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)
    demo = commands.add_parser("demo", help="load the demo data set (idempotent)")
    demo.set_defaults(run=_demo)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        result: int = arguments.run(arguments)
    except ConfigurationError as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
