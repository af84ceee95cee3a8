"""A runner carries the rows its pages wrote into its next page, and only while they hold.

`ProjectionRunner` keeps what its last committed page left (a keyed projection's rows, the
audit log's last link) and reads back from the tables only the rows it did not write. These
tests write several pages on the same bins and show that the carried rows are dropped
whenever they may no longer equal the tables: another runner applied pages in between, a
page failed and rolled back, a rebuild switched generations. Each ends with the digests of
a clean rebuild. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import ClassVar

import pytest
from sqlalchemy import BigInteger, Column, Connection, MetaData, Table

from ledger.application import Ledger
from ledger.commands import Dispatch, DispatchLine, Receipt, ReceiptLine
from ledger.config import Settings, read_models_url, store_environment
from ledger.domain.context import CommandMeta
from ledger.domain.item import ItemDetails
from projections import registry
from projections.base import Carried, Envelope, Projection
from projections.cost_layers import layer_texts, layers_of
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.service import ReadModels

D = Decimal
OPERATOR = CommandMeta(actor="operator")
SKUS = ("FIFO-1", "AVG-1")
LOCATION = "WH-1"
PAGE = 3
# The projections whose pages carry something: the keyed ones and the audit log.
CARRYING = ["stock_levels", "cost_layers", "audit_log"]


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    with Ledger(store_environment(database_url)) as app:
        for sku in SKUS:
            method = "fifo" if sku.startswith("FIFO") else "moving_average"
            app.register_item(sku, ItemDetails(f"Item {sku}", "each", method), OPERATOR)
        app.register_location(LOCATION, "Warehouse", OPERATOR)
        yield app


@pytest.fixture
def opened(database_url: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Callable[[str], ReadModels]]:
    """Read models beside the events (`"live"`, opened as often as asked) or, for any other
    name, on SQLite in a file of their own (a clean rebuild to compare with)."""
    all_opened: list[ReadModels] = []

    def open_read_models(name: str) -> ReadModels:
        url = read_models_url(Settings(database_url=database_url)) if name == "live" else \
            f"sqlite:///{(tmp_path_factory.mktemp(name) / 'read.db').as_posix()}"
        read_models = ReadModels.open(url)
        all_opened.append(read_models)
        return read_models

    yield open_read_models
    for read_models in all_opened:
        read_models.close()


def moves(ledger: Ledger, count: int) -> None:
    """Receipts and dispatches on the same two bins, so every page touches rows the one
    before wrote."""
    for number in range(count):
        sku = SKUS[number % 2]
        if number % 3 == 2:
            ledger.dispatch(Dispatch(location=LOCATION, lines=(
                DispatchLine(sku, D("0.5")),)), OPERATOR)
        else:
            ledger.receive(Receipt(location=LOCATION, lines=(
                ReceiptLine(sku, D(number % 4 + 1), D("1.25") + number % 3),)), OPERATOR)


def runner_of(read_models: ReadModels, ledger: Ledger,
              projections: Sequence[Projection] | None = None) -> ProjectionRunner:
    runner = ProjectionRunner(read_models.database, ledger.recorder, ledger.mapper,
                              read_models.projections if projections is None else projections,
                              page_size=PAGE)
    runner.prepare()
    return runner


def digests(read_models: ReadModels, names: Sequence[str] = CARRYING) -> dict[str, str]:
    return {status.name: status.digest for status in read_models.status() if status.name in names}


def clean(ledger: Ledger, read_models: ReadModels) -> dict[str, str]:
    rebuild(read_models.database, ledger.recorder, ledger.mapper, read_models.projections)
    return digests(read_models)


def carried_rows(runner: ProjectionRunner, names: Sequence[str] | None = None) -> int:
    return sum(len(carried.rows) for name, carried in runner._carried.items()
               if names is None or name in names)


def test_a_runner_reads_back_only_rows_it_did_not_write(
        ledger: Ledger, opened: Callable[[str], ReadModels]) -> None:
    moves(ledger, 12)
    live = opened("live")
    runner = runner_of(live, ledger)
    runner.catch_up()
    # Both bins' stock-level and cost-layer rows are carried, as the tables hold them.
    assert carried_rows(runner, ["stock_levels", "cost_layers"]) == 4
    with live.database.reader.connect() as connection:
        for name in ("stock_levels", "cost_layers"):
            projection = live.by_name[name]
            table = projection.tables(1)[name]
            stored = {tuple(row[c.name] for c in table.primary_key.columns): dict(row)
                      for row in connection.execute(table.select()).mappings()}
            assert runner._carried[name].rows == stored
            if name == "cost_layers":
                # The layers are carried decoded too, as their stored text reads, with
                # each layer's text.
                decoded = runner._carried[name].decoded
                assert decoded.keys() == stored.keys()
                for key, row in stored.items():
                    layers = layers_of(row["layers"])
                    assert decoded[key] == (row["layers"], layers, layer_texts(layers))
                assert len(decoded[("FIFO-1", LOCATION)][1]) > 1
    assert digests(live) == clean(ledger, opened("clean"))


def test_pages_of_another_runner_in_between_are_read_not_overwritten(
        ledger: Ledger, opened: Callable[[str], ReadModels]) -> None:
    moves(ledger, 9)
    live, again = opened("live"), opened("live")
    first, second = runner_of(live, ledger), runner_of(again, ledger)
    first.advance()
    # Two runners taking turns page by page, as a hot standby that takes over and hands back:
    # each finds the other's pages, on the same bins, under rows it carries.
    while True:
        moves(ledger, 2)
        consumed = second.advance() + first.advance()
        if ledger.head_position() == live.wait(CARRYING, 0, 1)["audit_log"].position:
            break
        assert consumed
    first.catch_up()
    assert digests(live) == clean(ledger, opened("clean"))


class Poison(Projection):
    """Fails every page while `failing` is set (after the real projections applied theirs,
    in the same transaction)."""

    name = "poison"
    topics: ClassVar[frozenset[str] | None] = None
    failing = False

    def define_tables(self, metadata: MetaData, suffix: str) -> dict[str, Table]:
        return {"poison": Table(f"poison{suffix}", metadata,
                                Column("position", BigInteger, primary_key=True))}

    def apply_page(self, connection: Connection, tables: dict[str, Table],
                   envelopes: Sequence[Envelope], carried: Carried | None = None) -> None:
        if self.failing:
            raise RuntimeError("poisoned page")


def test_a_page_that_failed_leaves_nothing_carried(
        ledger: Ledger, opened: Callable[[str], ReadModels]) -> None:
    moves(ledger, 6)
    live = opened("live")
    poison = Poison()
    runner = runner_of(live, ledger, [*registry.select(CARRYING), poison])
    runner.catch_up()
    moves(ledger, 4)
    poison.failing = True
    with pytest.raises(RuntimeError, match="poisoned page"):
        runner.advance()
    # The page's rows were rolled back: so is what it carried.
    assert carried_rows(runner) == 0
    poison.failing = False
    runner.catch_up()
    assert digests(live) == clean(ledger, opened("clean"))


def test_a_rebuild_switch_drops_what_was_carried(
        ledger: Ledger, opened: Callable[[str], ReadModels]) -> None:
    moves(ledger, 6)
    live = opened("live")
    runner = runner_of(live, ledger)
    runner.catch_up()
    assert carried_rows(runner) > 0
    rebuild(live.database, ledger.recorder, ledger.mapper, live.projections)
    moves(ledger, 6)
    runner.catch_up()
    assert {live.wait([name], 0, 1)[name].generation for name in CARRYING} == {2}
    assert digests(live) == clean(ledger, opened("clean"))
