"""`scripts/bench`: every measurement of issue 7, in one run, on PostgreSQL.

Phases, in order (each in scratch schemas of the database `ledger_bench`, dropped after):

1–3  raw      the database's limits with psycopg: INSERT + COMMIT per row (1, 4, 16, 64
              threads), COPY in 10,000-row transactions, reading the table in pages
4    ledger   16 clients (and 1, 4, 64) calling Ledger.receive / Ledger.dispatch
5    baseline the same through a plain eventsourcing application at its defaults
6    http     the same through `ledger serve` (production layout), plus GET /stock to a
              query process of its own and to the writing one
7–9  history  a programmatic export of N events → `ledger import` → `ledger rebuild` →
              `ledger export` (digest check) → stock-as-of queries against a 10,000-event
              store → loading a long-lived bin and a short-lived one

Phases 1, 4, 5 and 6 set up and measure their 1-, 4- and 64-client windows in turn and stay
ready; their 16-client windows (the targets') then run in interleaved rounds before phase
7 (`benchmark.rounds`: the machine's speed drifts, and the ratios compare those windows).

Prints a table, writes docs/benchmarks.md and docs/benchmarks-clients.svg, and with
--json FILE the figures and ratios as JSON. Exit status: 0 when every phase ran (whether
or not the targets were met), 1 when a phase failed, 2 on bad arguments or no database.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from benchmark import cpu, machine, pg, raw, report, rounds
from benchmark.rounds import Window, described, mean_usage, merged
from benchmark.stats import Figures, LoadResult, median, percentile, run_clients

if TYPE_CHECKING:
    from benchmark.history import History

REPO = Path(__file__).resolve().parents[2]
PHASES = ("raw", "ledger", "baseline", "http", "history")
# Phases whose 16-client window is measured in interleaved rounds (benchmark.rounds).
ROUND_PHASES = ("raw", "ledger", "baseline", "http")


@dataclass(frozen=True)
class Plan:
    mode: str
    window: float  # seconds of the 16-client windows, all rounds together
    rounds: int  # the 16-client windows of phases 1, 4, 5 and 6: interleaved rounds
    short_window: float  # seconds of the 1-, 4- and 64-client windows (the plot's others)
    copy_rows: int
    history_events: int
    hot_movements: int
    as_of_queries: int
    hot_loads: int
    cold_loads: int
    stall_seconds: float
    command_timeout: float


QUICK = Plan("quick", window=5, rounds=1, short_window=2, copy_rows=200_000, history_events=20_000,
             hot_movements=10_000, as_of_queries=60, hot_loads=11, cold_loads=21,
             stall_seconds=5, command_timeout=600)
FULL = Plan("full", window=30, rounds=5, short_window=10, copy_rows=1_000_000,
            history_events=1_000_000,
            hot_movements=100_000, as_of_queries=300, hot_loads=11, cold_loads=51,
            stall_seconds=15, command_timeout=6 * 3600)


@dataclass
class Run:
    plan: Plan
    scratch: pg.Scratch
    figures: Figures
    work: Path
    keep: bool
    pin: bool = True  # the ledger's and the baseline's process on one core (cpu.one_core)
    curves: dict[str, dict[int, float]] = field(default_factory=dict)
    # What phases 1, 4, 5 and 6 set up stays open for their 16-client rounds (`rounds`).
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    contenders: list[rounds.Contender] = field(default_factory=list)

    @property
    def round_window(self) -> float:
        """Seconds of one round's 16-client window."""
        return self.plan.window / self.plan.rounds

    def curve(self, key: str, clients: int, rate: float) -> None:
        self.curves.setdefault(key, {})[clients] = rate

    def run_rounds(self) -> None:
        """The 16-client windows of the phases set up so far, in interleaved rounds; then
        what those phases set up is closed."""
        try:
            if self.contenders:
                say(f"--- 16-client windows: {self.plan.rounds} round(s) of "
                    f"{', '.join(c.name for c in self.contenders)}, "
                    f"{self.round_window:g} s each")
                rounds.run_rounds(self.contenders, self.plan.rounds, self.round_window,
                                  self.failed, say, _settle)
        finally:
            self.contenders.clear()
            self.figures.drop_unfilled()
            self.stack.close()

    def failed(self, phase: str, error: Exception) -> None:
        """A phase (or its rounds' window) failed: shown, and listed in the report."""
        traceback.print_exception(error)
        self.figures.errors.append(f"{phase}: {type(error).__name__}: {error}"[:2000])



def _settle() -> None:
    waited = pg.autovacuum_quiet()
    if waited >= 0.5:
        say(f"waited {waited:.1f} s for autovacuum to finish before the next window")


def _settle_after_bulk() -> None:
    """Before the import, the rebuild and the latency measurements of phase 9: the 16-client
    windows, the import and the rebuild inserted up to millions of rows, and the autovacuum
    they set off (minutes of it on a full run) would otherwise run during the next one."""
    waited = pg.autovacuum_quiet(seconds_max=600.0)
    pg.checkpoint()
    if waited >= 0.5:
        say(f"waited {waited:.1f} s for autovacuum to finish")


def say(text: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)


def _errors(result: LoadResult, what: str, run: Run) -> None:
    if result.errors:
        listed = ", ".join(f"{name} × {count}" for name, count in result.errors.most_common())
        run.figures.note(f"{what}: operations failed in the timed window: {listed}")


def _cpu(run: Run, phase: str, usage: cpu.Usage | None, own: str) -> None:
    """Context figures: the cores this process and PostgreSQL used in a 16-client window."""
    if usage is None:
        return
    run.figures.add(f"{phase}_cpu_client", usage.own, "cores",
                    f"context: CPU used by {own} in the 16-client window", "")
    run.figures.add(f"{phase}_cpu_postgres", usage.postgres, "cores",
                    "context: CPU used by PostgreSQL's processes in the same window", "")
    say(f"{phase}: CPU in the window: {usage.own:.2f} cores here, "
        f"{usage.postgres:.2f} PostgreSQL" + (f", {usage.server:.2f} the server"
                                             if usage.server else ""))


# 1–3 ------------------------------------------------------------------------------------------


def phase_raw(run: Run) -> None:
    f = run.figures
    schema = run.stack.enter_context(run.scratch.schema("raw", run.keep))
    with pg.connect() as conn:
        raw.create_table(conn, schema, "commit_events")
        raw.create_table(conn, schema, "copy_events")
        raw.create_table(conn, schema, "locked_events")
    f.reserve("raw_insert_commit", "raw_insert_commit_p50", "raw_insert_commit_p99")
    for clients in report.CLIENTS:
        if clients == 16:
            continue  # in the rounds (benchmark.rounds)
        pg.checkpoint()
        result = raw.insert_commit(schema, "commit_events", clients, run.plan.short_window)
        _errors(result, f"raw_insert_commit ({clients} clients)", run)
        run.curve("raw", clients, result.rate)
        say(f"raw INSERT+COMMIT, {clients:>2} clients: {result.rate:,.0f}/s")
        f.add(f"raw_insert_commit_{clients}_client{'s' if clients > 1 else ''}",
              result.rate, "transactions/s", f"{clients} thread(s)", "1")
    pg.checkpoint()
    locked = raw.insert_commit(schema, "locked_events", 16, run.plan.short_window,
                               lock_table=True)
    f.add("raw_insert_commit_locked", locked.rate, "transactions/s",
          "context: as (1), each transaction first taking the EXCLUSIVE table lock that "
          "eventsourcing's recorder takes before every insert", "")
    say(f"raw INSERT+COMMIT with LOCK TABLE, 16 clients: {locked.rate:,.0f}/s")
    pg.checkpoint()
    copied = raw.copy_rows(schema, "copy_events", run.plan.copy_rows)
    f.add("raw_copy", copied.rate, "rows/s",
          f"COPY (binary) of {copied.rows:,} rows in 10,000-row transactions", "2")
    say(f"raw COPY: {copied.rate:,.0f} rows/s")
    read = raw.read_pages(schema, "copy_events")
    f.add("raw_read", read.rate, "rows/s",
          f"{read.rows:,} rows in notification-id order, {raw.READ_PAGE_ROWS:,}-row pages",
          "3")
    say(f"raw read: {read.rate:,.0f} rows/s")

    def measure(seconds: float) -> Window:
        pg.checkpoint()
        return Window(raw.insert_commit(schema, "commit_events", 16, seconds))

    def record(windows: list[Window]) -> None:
        results = [window.result for window in windows]
        value, together = rounds.rate(results), merged(results)
        _errors(together, "raw_insert_commit (16 clients)", run)
        run.curve("raw", 16, value)
        f.rounds["raw_insert_commit"] = [result.rate for result in results]
        f.add("raw_insert_commit", value, "transactions/s", described(
            "16 threads, one single-row INSERT per transaction", results, run.round_window),
            "1")
        f.add("raw_insert_commit_p50", together.p(0.5), "ms", "latency of one", "1")
        f.add("raw_insert_commit_p99", together.p(0.99), "ms", "latency of one", "1")

    run.contenders.append(rounds.Contender("raw", measure, record))


# 4 --------------------------------------------------------------------------------------------


def phase_ledger(run: Run) -> None:
    from benchmark import workload

    schema = run.stack.enter_context(run.scratch.schema("ledger", run.keep))
    # The Ledger's threads (its writer, its pool's) start pinned, and stay so; the client
    # threads of each window are started pinned too.
    with cpu.one_core(run.pin):
        ledger = workload.make_ledger(run.scratch.url(schema))
    run.stack.callback(ledger.close)
    with cpu.one_core(run.pin):
        started = time.perf_counter()
        workload.register_reference(ledger)
        workload.prime_bins(ledger)
        say(f"ledger: 100 items, 10 locations, 1,000 bins primed in "
            f"{time.perf_counter() - started:.1f} s")

    def state_bytes() -> None:
        with pg.connect() as conn:
            row = conn.execute(
                f'SELECT avg(length(state)) FROM "{schema}".ledger_events '
                "WHERE topic LIKE 'ledger:StockBin.%ed'").fetchone()
        if row and row[0] is not None:
            run.figures.add("ledger_event_state_bytes", float(row[0]), "bytes",
                            "context: mean stored state of a movement event the ledger wrote",
                            "")

    _commands(run, Commands(
        "ledger", "4", lambda n: workload.ledger_operation(ledger), 4,
        "16 threads, one-line receipts and dispatches over 1,000 bins, "
        "Ledger.receive / Ledger.dispatch",
        "the benchmark process (the ledger and its 16 client threads)"), state_bytes)


@dataclass(frozen=True)
class Commands:
    """An in-process contender of phases 4 and 5: `<name>_commands` from client threads."""

    name: str  # "ledger" or "baseline": the curve, the figures' prefix
    number: str  # issue 7's numbering
    operation: Callable[[int], Callable[..., object]]  # a client's operation, by client
    seed: int
    what: str  # the 16-client figure's description
    process: str  # what the benchmark process holds, for the CPU figures


def _commands(run: Run, commands: Commands, also: Callable[[], None] = lambda: None) -> None:
    """The 1-, 4- and 64-client windows now, pinned to one core; the 16-client window as a
    contender of the rounds, `also` run once it has recorded."""
    f, key = run.figures, f"{commands.name}_commands"
    f.reserve(key, f"{key}_p50", f"{key}_p99")
    with cpu.one_core(run.pin):
        for clients in report.CLIENTS:
            if clients == 16:
                continue  # in the rounds (benchmark.rounds)
            pg.checkpoint()
            result = run_clients(clients, run.plan.short_window, commands.operation,
                                 seed=commands.seed)
            _errors(result, f"{key} ({clients} clients)", run)
            run.curve(commands.name, clients, result.rate)
            say(f"{commands.name}, {clients:>2} clients: {result.rate:,.0f} commands/s, "
                f"p50 {result.p(0.5):.1f} ms, p99 {result.p(0.99):.1f} ms")
            f.add(f"{key}_{clients}_client{'s' if clients > 1 else ''}",
                  result.rate, "commands/s", f"{clients} thread(s)", commands.number)

    def measure(seconds: float) -> Window:
        with cpu.one_core(run.pin):
            pg.checkpoint()
            before = cpu.sample()
            result = run_clients(16, seconds, commands.operation, seed=commands.seed)
            return Window(result, cpu.usage(before))

    def record(windows: list[Window]) -> None:
        results = [window.result for window in windows]
        value, together = rounds.rate(results), merged(results)
        _cpu(run, commands.name, mean_usage([window.usage for window in windows]),
             commands.process)
        _errors(together, f"{key} (16 clients)", run)
        run.curve(commands.name, 16, value)
        f.rounds[key] = [result.rate for result in results]
        f.add(key, value, "commands/s", described(commands.what, results, run.round_window),
              commands.number)
        f.add(f"{key}_p50", together.p(0.5), "ms", "latency of one", commands.number)
        f.add(f"{key}_p99", together.p(0.99), "ms", "latency of one", commands.number)
        also()

    run.contenders.append(rounds.Contender(commands.name, measure, record))


# 5 --------------------------------------------------------------------------------------------


def phase_baseline(run: Run) -> None:
    from benchmark import baseline

    schema = run.stack.enter_context(run.scratch.schema("baseline", run.keep))
    with cpu.one_core(run.pin):
        inventory = baseline.make_inventory(run.scratch.url(schema))
    run.stack.callback(inventory.close)
    with cpu.one_core(run.pin):
        started = time.perf_counter()
        baseline.prime_bins(inventory)
        say(f"baseline: 1,000 bins primed in {time.perf_counter() - started:.1f} s")
    _commands(run, Commands(
        "baseline", "5", lambda n: baseline.operation(inventory), 5,
        "the same commands, plain eventsourcing Application at its defaults: load, decide, "
        "save, retry on conflict",
        "the benchmark process (the application and its 16 client threads)"))


# 6 --------------------------------------------------------------------------------------------


def phase_http(run: Run) -> None:
    from benchmark import http_api, workload

    f = run.figures
    schema = run.stack.enter_context(run.scratch.schema("http", run.keep))
    url = run.scratch.url(schema)
    ledger = workload.make_ledger(url)
    try:
        workload.register_reference(ledger)
        workload.prime_bins(ledger)
    finally:
        ledger.close()
    mode, workers = http_api.projections_mode(), http_api.api_workers()
    server_core, projector_core = cpu.two_cores(run.pin and workers == 1)
    projector = None
    if mode == "external":
        projector = http_api.start_projector(url, run.work / "project.log", projector_core)
        run.stack.callback(http_api.stop_projector, projector)
    server = http_api.start_server(url, run.work / "serve.log", workers, mode, server_core)
    run.stack.callback(server.stop)
    # The query process: one more `ledger serve` taking only GET /stock, as
    # docs/operations.md deploys queries, beside the projection worker.
    reader = http_api.start_server(url, run.work / "serve-queries.log", 1, mode,
                                   projector_core)
    run.stack.callback(reader.stop)
    http_api.wait_for_projections(server.base_url)
    http_api.run_load(server.base_url, 16, 1.0, reader.base_url)  # warm-up
    http_api.wait_for_projections(server.base_url)
    deployed = (f"`ledger serve --workers {workers}`, LEDGER_PROJECTIONS={mode}"
                + (" with one `ledger project` worker" if projector else ""))
    f.reserve("http_cpu_server", "http_cpu_projector", "http_commands", "http_commands_p50",
              "http_commands_p99", "http_stock_query_p50", "http_stock_query_p99",
              "http_stock_query_write_process_p50", "http_stock_query_write_process_p99")

    def measure(seconds: float) -> Window:
        pg.checkpoint()
        before = cpu.sample(server.process.pid)
        projector_before = cpu.sample(projector.pid) if projector else None
        result = http_api.run_load(server.base_url, 16, seconds, reader.base_url)
        usage = cpu.usage(before, server.process.pid)
        projector_usage = cpu.usage(projector_before, projector.pid) if projector else None
        assert result.read_queries is not None, "the query process was given"
        # The worker catches up before the next contender's window, not in it.
        http_api.wait_for_projections(server.base_url)
        return Window(result.commands, usage, {
            "queries": result.read_queries, "same": result.queries,
            "projector": projector_usage})

    def record(windows: list[Window]) -> None:
        _http_record(run, deployed, windows, server.log_tail(20000))

    run.contenders.append(rounds.Contender("http", measure, record))


def _http_record(run: Run, deployed: str, windows: list[Window], server_log: str) -> None:
    f = run.figures
    results = [window.result for window in windows]
    value, commands = rounds.rate(results), merged(results)
    queries = merged([window.beside["queries"] for window in windows])
    same = merged([window.beside["same"] for window in windows])
    usage = mean_usage([window.usage for window in windows])
    projector_usage = mean_usage([window.beside["projector"] for window in windows])
    _cpu(run, "http", usage, "the benchmark process (the 18 HTTP clients)")
    if usage is not None:
        f.add("http_cpu_server", usage.server, "cores",
              f"context: CPU used by {deployed.split(',')[0]} (API, group commit"
              + (", embedded projections" if "embedded" in deployed else "")
              + ") in the window", "")
    if projector_usage is not None:
        f.add("http_cpu_projector", projector_usage.server, "cores",
              "context: CPU used by the `ledger project` worker in the window", "")
    _errors(commands, "http_commands", run)
    _errors(queries, "http_stock_query", run)
    _errors(same, "http_stock_query_write_process", run)
    run.curve("http", 16, value)
    f.rounds["http_commands"] = [result.rate for result in results]
    f.add("http_commands", value, "requests/s", described(
        f"16 keep-alive clients: POST /receipts and /dispatches to {deployed} (uvicorn)",
        results, run.round_window), "6")
    f.add("http_commands_p50", commands.p(0.5), "ms", "latency of one request", "6")
    f.add("http_commands_p99", commands.p(0.99), "ms", "latency of one request", "6")
    f.add("http_stock_query_p50", queries.p(0.5), "ms",
          f"GET /stock?sku= back to back to a query process (a second `ledger serve`) "
          f"while the writes run ({queries.completed:,} queries)", "6")
    f.add("http_stock_query_p99", queries.p(0.99), "ms", "the same queries", "6")
    f.add("http_stock_query_write_process_p50", same.p(0.5), "ms",
          "context: GET /stock?sku= ten times a second to the process taking the "
          f"writes, in the same window ({same.completed:,} queries)", "")
    f.add("http_stock_query_write_process_p99", same.p(0.99), "ms",
          "context: the same queries", "")
    say(f"http: {value:,.0f} requests/s, p50 {commands.p(0.5):.1f} ms, "
        f"p99 {commands.p(0.99):.1f} ms; GET /stock p50 {queries.p(0.5):.1f} ms, "
        f"p99 {queries.p(0.99):.1f} ms (to the writing process: p50 "
        f"{same.p(0.5):.1f} ms, p99 {same.p(0.99):.1f} ms)")
    if "Traceback" in server_log:
        run.figures.note("ledger serve logged a traceback during the HTTP phase; see "
                         "the server log excerpt in the terminal output")
        print(server_log[-4000:])


# 7–9 ------------------------------------------------------------------------------------------


def _import(run: Run, phase: str, schema: str, path: Path, *, measured: bool = True
            ) -> tuple[dict[str, float], bool]:
    """`ledger import` into `schema`; on a hang, once more with 1,000-event batches."""
    from benchmark import history

    url = run.scratch.url(schema)
    log = run.work / f"import-{phase}.log"
    try:
        done = history.ledger_command(["import", str(path)], url, log,
                                      timeout=run.plan.command_timeout, watch_schema=schema,
                                      stall_seconds=run.plan.stall_seconds)
        return done.result, False
    except history.CommandHung as hung:
        run.figures.note(
            f"{hung}. `ledger import` inserts {_page_size()}-event batches through "
            "eventsourcing's PostgresApplicationRecorder.insert_events, which runs in "
            "psycopg pipeline mode; a statement of several MB can deadlock there (the "
            "server waits for the rest of the message, the client for the result). "
            + ("Measured again with BENCH_IMPORT_PAGE_SIZE=1000 (patched in the "
               "benchmark's subprocess only); bulk_import is that second run"
               if measured else "Imported again with 1,000-event batches (not timed)"))
        run.scratch.create(phase)  # drops the half-imported schema and makes it anew
        done = history.ledger_command(["import", str(path)], url, log,
                                      timeout=run.plan.command_timeout, watch_schema=schema,
                                      stall_seconds=run.plan.stall_seconds,
                                      extra_environment={"BENCH_IMPORT_PAGE_SIZE": "1000"})
        return done.result, True


def _page_size() -> str:
    from ledger import export

    size = getattr(export, "IMPORT_BATCH_EVENTS", getattr(export, "PAGE_SIZE", None))
    return f"{size:,}" if isinstance(size, int) else "?"


def _rebuild_output_floor(run: Run, schema: str, events: int) -> None:
    """Context for (8): what the rebuild wrote, written again by the server alone."""
    with pg.connect() as conn:
        generation = conn.execute(sql.SQL("SELECT max(generation) FROM {}").format(
            sql.Identifier(schema, "projection_state"))).fetchone()[0]  # type: ignore[index]
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s "
            "ORDER BY tablename", (schema, f"%\\_g{generation}"))]
    floor = raw.write_tables(schema, tables)
    run.figures.add(
        "rebuild_output_copy", events / floor.seconds, "events/s",
        f"context: what the rebuild wrote ({floor.rows:,} rows, {floor.rows / events:.1f} a "
        f"log event, {len(tables)} tables) COPYed again into empty tables on one connection "
        "and indexed, no application code: how fast the server alone takes a rebuild's "
        "output", "")
    say(f"rebuild's output, written again by the server alone: {floor.seconds:.1f} s "
        f"({events / floor.seconds:,.0f} log events/s, {floor.rows:,} rows)")


def _rebuild_processes() -> int:
    """The processes `ledger rebuild` folds in here (LEDGER_REBUILD_PROCESSES, else one per
    core)."""
    from ledger.config import Settings, rebuild_processes

    return rebuild_processes(Settings.from_environ())


def phase_history(run: Run) -> None:
    from benchmark import history

    f, plan = run.figures, run.plan
    say(f"history: writing an export of {plan.history_events:,} events "
        f"(hot bin: {plan.hot_movements:,} movements)")
    made = history.generate(run.work, plan.history_events, plan.hot_movements)
    say(f"history: {made.events:,} events in {made.seconds:.1f} s "
        f"({made.events / made.seconds:,.0f}/s), mean state {made.state_bytes_mean:.0f} bytes")
    f.add("history_events", made.events, "events", "events in the long history (7, 8, 9)", "")
    f.add("history_event_state_bytes", made.state_bytes_mean, "bytes",
          "context: mean stored state of the history's events", "")

    # The short history: 10,000 events, for the as-of comparison. It stays until the long
    # one is measured: the two are queried in alternating rounds, so that a change in the
    # machine's speed between them (seen here: 1.0 to 1.55 between runs) weighs on both.
    with contextlib.ExitStack() as stores:
        short = stores.enter_context(run.scratch.schema("short", run.keep))
        short_url = run.scratch.url(short)
        _import(run, "short", short, made.short_path, measured=False)
        history.ledger_command(["rebuild"], short_url, run.work / "rebuild-short.log",
                               timeout=plan.command_timeout)
        short_moment = made.first + (made.short_last - made.first) / 2
        _history_long(run, made, short_url, short_moment)
    made.path.unlink(missing_ok=True)
    made.short_path.unlink(missing_ok=True)


def _history_long(run: Run, made: History, short_url: str, short_moment: datetime) -> None:
    """7–9 on the long history (the short one imported and rebuilt at `short_url`)."""
    from benchmark import history

    f, plan = run.figures, run.plan
    with run.scratch.schema("long", run.keep) as long:
        url = run.scratch.url(long)
        _settle_after_bulk()
        result, workaround = _import(run, "long", long, made.path)
        rate = made.events / result["seconds"]
        batches = " — with 1,000-event batches: the stock size hung" if workaround else ""
        f.add("bulk_import", rate, "events/s",
              f"`ledger import` of a {made.events:,}-event export into an empty schema "
              f"(verification of the chain included){batches}", "7")
        f.add("bulk_import_seconds", result["seconds"], "s", "the same, wall time", "7")
        say(f"import: {made.events:,} events in {result['seconds']:.1f} s ({rate:,.0f}/s)")

        _settle_after_bulk()
        rebuilt = history.ledger_command(["rebuild"], url, run.work / "rebuild-long.log",
                                         timeout=plan.command_timeout)
        seconds = rebuilt.result.get("rebuild_seconds", rebuilt.result["seconds"])
        f.add("projection_rebuild", made.events / seconds, "events/s",
              f"`ledger rebuild` of every read model over {made.events:,} events in "
              f"{_rebuild_processes()} process(es) (time inside projections.rebuild.rebuild)",
              "8")
        f.add("projection_rebuild_seconds", seconds, "s", "the same, wall time", "8")
        f.add("projection_rebuild_command_seconds", rebuilt.result["seconds"], "s",
              "context: the whole command, with the status table's digests", "8")
        say(f"rebuild: {seconds:.1f} s ({made.events / seconds:,.0f} events/s); the command "
            f"{rebuilt.result['seconds']:.1f} s")
        _rebuild_output_floor(run, long, made.events)

        exported = run.work / "reexport.jsonl"
        again = history.ledger_command(["export", "--to", str(exported)], url,
                                       run.work / "export.log", timeout=plan.command_timeout)
        digest = history.head_digest_of(again.stdout)
        f.add("ledger_export", made.events / again.result["seconds"], "events/s",
              "context: `ledger export` of the imported store", "")
        if digest != str(made.head):
            run.figures.errors.append(
                f"`ledger export` of the imported store ends at {digest}, the generated "
                f"history at {made.head}: the import did not reproduce the export")
        else:
            say(f"export of the imported store: head digest {digest[:24]}… equals the file's")
        exported.unlink(missing_ok=True)

        moment = made.first + (made.last - made.first) / 2
        _settle_after_bulk()
        short_latencies, long_latencies = history.as_of_latencies(
            [(short_url, short_moment), (url, moment)], plan.as_of_queries)
        say(f"as-of query, {made.short_events:,} events: p50 "
            f"{percentile(short_latencies, 0.5) * 1000:.2f} ms")
        f.add("as_of_query_short", percentile(short_latencies, 0.5) * 1000, "ms",
              f"p50 of {plan.as_of_queries} stock-as-of queries (one SKU, 10 locations; "
              f"projections.queries.stock_as_of as GET /stock?as_of= runs it) over "
              f"{made.short_events:,} events", "9")
        f.add("as_of_query_short_p99", percentile(short_latencies, 0.99) * 1000, "ms",
              "the same, p99", "9")
        f.add("as_of_query_long", percentile(long_latencies, 0.5) * 1000, "ms",
              f"the same over {made.events:,} events", "9")
        f.add("as_of_query_long_p99", percentile(long_latencies, 0.99) * 1000, "ms",
              "the same, p99", "9")
        say(f"as-of query, {made.events:,} events: p50 "
            f"{percentile(long_latencies, 0.5) * 1000:.2f} ms")

        _settle_after_bulk()
        (hot_times, hot_version), (cold_times, cold_version) = history.aggregate_loads(
            url, [(*history.HOT, plan.hot_loads), (*history.COLD, plan.cold_loads)])
        f.add("aggregate_load_long", median(hot_times) * 1000, "ms",
              f"Ledger.stock_bin of a bin with {made.hot_movements:,} movements "
              f"(version {hot_version:,}), median of {plan.hot_loads}", "9")
        f.add("aggregate_load_short", median(cold_times) * 1000, "ms",
              f"the same for a bin with {history.COLD_MOVEMENTS} movements "
              f"(version {cold_version}), median of {plan.cold_loads}", "9")
        say(f"aggregate load: {made.hot_movements:,} movements {median(hot_times) * 1000:,.1f} "
            f"ms, {history.COLD_MOVEMENTS} movements {median(cold_times) * 1000:.2f} ms")


PHASE_FUNCTIONS: dict[str, Callable[[Run], None]] = {
    "raw": phase_raw, "ledger": phase_ledger, "baseline": phase_baseline, "http": phase_http,
    "history": phase_history,
}


def methods(plan: Plan) -> list[str]:
    s = f"{plan.short_window:g} s"
    at_16 = (f"{plan.window:g} s at 16 clients" if plan.rounds == 1 else
             f"{plan.window / plan.rounds:g} s at 16 clients, in {plan.rounds} rounds")
    return [
        "**Clients** are closed-loop threads that start together and issue the next "
        f"operation as soon as the last one answered; a window lasts {at_16} and "
        f"{s} at 1, 4 and 64 (the targets are at 16; 64 is context for the plot). Rates "
        "count the operations completed inside the window; "
        "latencies are those operations' own. A sync of the file system and a CHECKPOINT "
        "precede every timed phase.",
        "**Rounds**: the targets are ratios of windows of different phases, and this "
        "machine's speed drifts from minute to minute (the same ledger window measured "
        "4,572 and 6,136 commands/s minutes apart). So phases 1, 4, 5 and 6 are each set up "
        "first and kept ready, and their 16-client windows then run side by side: each round "
        "one window of raw, ledger, baseline and http in turn. A 16-client figure is the "
        "median of its rounds' rates (every round's rate is in its description), its "
        "latencies and CPU use those of all its rounds together; a target ratio of two "
        "such figures is the median of their ratios round by round (marked ¹). Before "
        "each window the run waits for PostgreSQL's autovacuum workers to finish, and the "
        "HTTP phase's projection worker catches up after each of its windows: work one "
        "window set off does not run in the next phase's.",
        "**1 raw_insert_commit**: a table created with eventsourcing 9.5's DDL for the "
        "stored events (uuid, version, topic, bytea state, bigserial notification_id, the "
        "primary key and the unique notification_id index); 250-byte states; psycopg 3, "
        "one connection per thread, one single-row INSERT per transaction, full durability "
        "(the server's settings above).",
        f"**2 raw_copy**: COPY FROM STDIN (binary) of {plan.copy_rows:,} such rows into an "
        "empty table of that shape, 10,000 rows per transaction. **3 raw_read**: that table "
        "read back in notification-id order, 5,000-row pages, as `SELECT * … WHERE "
        "notification_id > $1 ORDER BY notification_id LIMIT $2`.",
        "**4 ledger_commands**: 100 SKUs (half FIFO, half moving average) × 10 locations = "
        "1,000 bins, each primed with a receipt of 1,000,000; each command is a one-line "
        "receipt (5 at 2.50) or dispatch (3), even odds, on a random bin, through "
        "`Ledger.receive` / `Ledger.dispatch`. The Ledger is opened as `src/api/app.py` opens "
        "it, `open_ledger(Settings.from_environ())`, so its defaults (group commit, "
        "snapshots) and any LEDGER_* settings in the environment apply (see Machine). "
        "The benchmark process (the Ledger and its client threads) runs on one core, as "
        "docs/operations.md recommends deploying a Python process (`--no-pin`: free).",
        "**5 baseline_commands**: the same commands on a plain `eventsourcing.Application` "
        "with a minimal aggregate holding a quantity (`@event` methods), load → decide → "
        "save per command, retrying on IntegrityError; persistence settings at the "
        "library's defaults; on one core too, like the ledger.",
        "**6 http_commands**: `ledger serve` in a subprocess (uvicorn), deployed as "
        "docs/operations.md's production layout: LEDGER_PROJECTIONS=external with one "
        "`ledger project` worker process projecting while the commands arrive "
        "(BENCH_HTTP_PROJECTIONS=embedded and BENCH_HTTP_WORKERS=N measure the other "
        "layouts), on a primed store; 16 keep-alive clients (raw sockets: "
        "benchmark.http_api.Connection, cheaper than http.client) POST /receipts and "
        "/dispatches; one more client issues `GET /stock?sku=` back to back to a query "
        "process, a second `ledger serve` with the same settings that takes no writes "
        "(http_stock_query: queries served apart from the writes, as docs/operations.md "
        "deploys them), and another asks the writing process itself ten times a second "
        "in the same window, each latency counted from the moment the query was due "
        "(http_stock_query_write_process, context; a back-to-back reader there took "
        "CPU from the writes it shares a process with). The writing server and the "
        "projection worker each run on a core of their own, the query process on the projection "
        "worker's (with one API worker; `--no-pin`: free); the clients and PostgreSQL "
        "share both.",
        f"**7 bulk_import**: a history of {plan.history_events:,} events is written as an "
        "export file by the ledger's own aggregates and mapper (the chain links computed "
        "with ledger.chain), then `ledger import FILE` loads it into an empty schema "
        "(run through ledger.cli.main in a subprocess; interpreter start-up excluded). "
        "`ledger export` of the imported store must give the file's head digest.",
        "**8 projection_rebuild**: `ledger rebuild` (every read model) over the imported "
        "store; the time spent in projections.rebuild.rebuild (the command also prints a "
        "status table with a digest of every read model, timed separately).",
        f"**9 as_of_query**: p50 of {plan.as_of_queries} stock-as-of queries for one SKU "
        "(10 bins) at the middle of the history, run as `GET /stock?sku=&as_of=` runs them "
        "(ReadModels.wait + projections.queries.stock_as_of), on a store with the first "
        "10,000 events and on the long one, the two stores queried in 10 alternating "
        "rounds. **aggregate_load**: `Ledger.stock_bin(sku, "
        f"location)` of a bin with {plan.hot_movements:,} movements (median of "
        f"{plan.hot_loads}) and of one with 10 (median of {plan.cold_loads}), loaded in "
        "turn, the long bin's loads spread evenly among the short one's. The import, the "
        "rebuild and both measurements of phase 9 each start once the autovacuum that the "
        "phases before them set off has finished.",
    ]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller counts and 5 s windows: under 2 minutes")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--doc", metavar="FILE", default=str(REPO / "docs" / "benchmarks.md"),
                        help="the markdown report (the SVG goes beside it)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch schemas and files (debugging)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="let the ledger's and the baseline's process use every core "
                             "(by default each runs on one core, as deployed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse(argv)
    phases = [p.strip() for p in arguments.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        print(f"unknown phase(s): {', '.join(unknown)}; known: {', '.join(PHASES)}",
              file=sys.stderr)
        return 2
    plan = QUICK if arguments.quick else FULL
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    scratch = pg.Scratch()
    try:
        stale = scratch.open()
    except Exception as error:  # no server, no database, another run
        print(f"scripts/bench: cannot use PostgreSQL at {pg.admin_url()} "
              f"(set {pg.ADMIN_URL_VARIABLE}): {error}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-", dir=os.environ.get("BENCH_TMPDIR")))
    run = Run(plan, scratch, Figures(), work, arguments.keep, arguments.pin)
    if stale:
        say(f"dropped schemas a previous run left behind: {', '.join(stale)}")
    load_before = machine.load_average()
    facts = machine.describe(pg.server_settings())
    try:
        from benchmark.workload import ledger_settings

        facts["Ledger"] = ledger_settings()
    except Exception as error:  # a settings error shows up again in the phases
        facts["Ledger"] = f"settings unreadable: {error}"
    say(f"{plan.mode} run on {facts['CPU']}, {facts['Cores']} cores; PostgreSQL "
        f"{facts['PostgreSQL'].split(';')[0]} at {pg.database_url()}; load average "
        f"{load_before}")
    try:
        for phase in phases:
            if phase not in ROUND_PHASES:
                run.run_rounds()  # what the phases before set up is closed first
            say(f"--- {phase}")
            try:
                PHASE_FUNCTIONS[phase](run)
            except KeyboardInterrupt:
                raise
            except Exception as error:
                run.failed(phase, error)
        run.run_rounds()
    except KeyboardInterrupt:
        run.figures.errors.append("interrupted")
        say("interrupted: cleaning up")
    finally:
        run.stack.close()
        scratch.close(arguments.keep)
        if not arguments.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept files in {work} and schemas {', '.join(scratch.created)}")
    duration = time.perf_counter() - started
    load_after = machine.load_average()
    if load_before.split()[0] != "unknown" and float(load_before.split()[0]) > 1.0:
        run.figures.notes.insert(0, (
            f"The machine was not idle when the run began (load average {load_before}): "
            "other processes shared its cores, and every figure is lower for it."))
    report.print_table(run.figures)
    doc = Path(arguments.doc)
    svg = doc.with_name(f"{doc.stem}-clients.svg")
    command = "scripts/bench" + (" --quick" if arguments.quick else "")
    if arguments.phases != ",".join(PHASES):
        command += f" --phases {arguments.phases}"
    doc.parent.mkdir(parents=True, exist_ok=True)
    svg.write_text(report.svg_plot(
        run.curves, "Commands per second against concurrent clients",
        f"{plan.mode} run, {date}; {facts['CPU']}, {facts['Cores']} cores; "
        f"PostgreSQL {facts['PostgreSQL'].split(';')[0].split()[0]}"), encoding="utf-8")
    doc.write_text(report.markdown(
        run.figures, mode=plan.mode, date=date, machine=facts, curves=run.curves,
        svg_name=svg.name, command=command, duration=duration, load_before=load_before,
        load_after=load_after, methods=methods(plan)), encoding="utf-8")
    say(f"wrote {_shown(doc)} and {_shown(svg)}")
    if arguments.json:
        report.write_json(run.figures, Path(arguments.json))
        say(f"wrote {arguments.json}")
    for error in run.figures.errors:
        print(f"scripts/bench: {error}", file=sys.stderr)
    say(f"done in {duration:.0f} s")
    return 1 if run.figures.errors else 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
