"""Items and locations: reference data registered once, updated by new events, never rewritten."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.application import Ledger
from ledger.domain.context import CommandMeta
from ledger.domain.identity import item_id, location_id
from ledger.domain.item import Item, ItemDetails
from ledger.domain.location import Location
from ledger.errors import ImmutableField, InvalidInput, InvalidQuantity, UnknownItem
from unit.support import rebuilt

D = Decimal
BOLT = ItemDetails("Bolt M6", "each", "fifo", D("5.000"))
ADMIN = CommandMeta("admin")


def registered_item() -> Item:
    result = rebuilt(Item.register("BOLT-6", BOLT, "admin").collect_events())
    assert isinstance(result, Item)
    return result


def test_registering_an_item_records_its_details() -> None:
    [registered] = Item.register("BOLT-6", BOLT, "admin").collect_events()

    assert isinstance(registered, Item.Registered)
    assert registered.originator_id == item_id("BOLT-6")
    assert (registered.sku, registered.name, registered.uom, registered.valuation_method,
            registered.reorder_point, registered.actor) == (
        "BOLT-6", "Bolt M6", "each", "fifo", D("5.000"), "admin")
    assert rebuilt([registered]).details == BOLT


def test_updating_an_item_records_the_new_details() -> None:
    bolt = registered_item()

    bolt.update(ItemDetails("Bolt M6 zinc", "box", "fifo", None), "bob")

    [updated] = bolt.collect_events()
    assert isinstance(updated, Item.Updated)
    assert (updated.name, updated.uom, updated.reorder_point, updated.actor) == (
        "Bolt M6 zinc", "box", None, "bob")
    assert bolt.details == ItemDetails("Bolt M6 zinc", "box", "fifo", None)


def test_updating_an_item_with_the_same_details_records_nothing() -> None:
    bolt = registered_item()

    bolt.update(BOLT, "bob")

    assert bolt.pending_events == []


def test_the_valuation_method_cannot_change() -> None:
    bolt = registered_item()

    with pytest.raises(ImmutableField) as refusal:
        bolt.update(ItemDetails("Bolt M6", "each", "moving_average", D("5")), "bob")

    assert refusal.value.facts() == {"field": "valuation_method"}
    assert bolt.pending_events == []
    assert bolt.valuation_method == "fifo"


def test_registering_a_location_records_its_code_and_name() -> None:
    [registered] = Location.register("WH-1", "Main warehouse", "admin").collect_events()

    assert isinstance(registered, Location.Registered)
    assert registered.originator_id == location_id("WH-1")
    assert (registered.code, registered.name, registered.actor) == (
        "WH-1", "Main warehouse", "admin")


def test_renaming_a_location_records_the_new_name_and_only_a_new_one() -> None:
    warehouse = rebuilt(Location.register("WH-1", "Main", "admin").collect_events())

    warehouse.rename("Main", "bob")
    assert warehouse.pending_events == []
    warehouse.rename("North", "bob")

    [renamed] = warehouse.collect_events()
    assert isinstance(renamed, Location.Renamed)
    assert (renamed.name, renamed.actor, warehouse.name) == ("North", "bob", "North")


def test_registering_the_same_item_twice_appends_nothing(ledger: Ledger) -> None:
    first = ledger.register_item("BOLT-6", BOLT, ADMIN)
    head = ledger.head_position()

    again = ledger.register_item("BOLT-6", ItemDetails("Bolt M6", "each", "fifo", D("5")), ADMIN)

    assert first.changed and first.position == head
    assert (again.changed, again.position) == (False, None)
    assert ledger.head_position() == head


def test_re_registering_an_item_with_new_details_updates_it(ledger: Ledger) -> None:
    ledger.register_item("BOLT-6", BOLT, ADMIN)

    update = ledger.register_item("BOLT-6", ItemDetails("Bolt", "box", "fifo"), ADMIN)

    assert update.changed and update.position == ledger.head_position()
    assert ledger.item("BOLT-6").details == ItemDetails("Bolt", "box", "fifo", None)


def test_re_registering_an_item_with_another_valuation_method_is_refused(
        ledger: Ledger) -> None:
    head = ledger.head_position()

    with pytest.raises(ImmutableField):
        ledger.register_item("FIFO-1", ItemDetails("Bolt", "each", "moving_average"), ADMIN)

    assert ledger.head_position() == head
    assert ledger.item("FIFO-1").valuation_method == "fifo"


def test_re_registering_a_location_renames_it(ledger: Ledger) -> None:
    same = ledger.register_location("WH-1", "Main warehouse", ADMIN)
    renamed = ledger.register_location("WH-1", "North warehouse", ADMIN)

    assert (same.changed, renamed.changed) == (False, True)
    location = ledger.location("WH-1")
    assert location is not None and location.name == "North warehouse"


def test_an_unregistered_item_is_reported_unknown(ledger: Ledger) -> None:
    with pytest.raises(UnknownItem) as refusal:
        ledger.item("NOPE")

    assert refusal.value.facts() == {"sku": "NOPE"}
    assert ledger.location("NOPE") is None


@pytest.mark.parametrize(
    ("sku", "details", "error", "field"),
    [
        ("bad sku", BOLT, InvalidInput, "sku"),
        ("BOLT-6", ItemDetails("Bolt", "each", "lifo"), InvalidInput,  # type: ignore[arg-type]
         "valuation_method"),
        ("BOLT-6", ItemDetails("", "each", "fifo"), InvalidInput, "name"),
        ("BOLT-6", ItemDetails("Bolt", "", "fifo"), InvalidInput, "uom"),
        ("BOLT-6", ItemDetails("x" * 501, "each", "fifo"), InvalidInput, "name"),
        ("BOLT-6", ItemDetails("Bolt", "each", "fifo", D("-1")), InvalidQuantity,
         "reorder_point"),
        ("BOLT-6", ItemDetails("Bolt", "each", "fifo", D("1.0001")), InvalidQuantity,
         "reorder_point"),
    ],
)
def test_invalid_item_details_are_refused(
        ledger: Ledger, sku: str, details: ItemDetails, error: type[InvalidInput],
        field: str) -> None:
    head = ledger.head_position()

    with pytest.raises(error) as refusal:
        ledger.register_item(sku, details, ADMIN)

    assert refusal.value.field == field
    assert ledger.head_position() == head


@pytest.mark.parametrize(("code", "name", "field"), [
    ("-WH", "Dock", "code"), ("WH 1", "Dock", "code"), ("WH-3", "", "name")])
def test_invalid_locations_are_refused(ledger: Ledger, code: str, name: str, field: str) -> None:
    head = ledger.head_position()

    with pytest.raises(InvalidInput) as refusal:
        ledger.register_location(code, name, ADMIN)

    assert refusal.value.field == field
    assert ledger.head_position() == head


def test_items_are_listed_in_registration_order_a_page_at_a_time(ledger: Ledger) -> None:
    ledger.register_item("BOLT-6", BOLT, ADMIN)
    ledger.register_item("FIFO-1", ItemDetails("Bolt, renamed", "each", "fifo"), ADMIN)

    first_page, cursor = ledger.items(after=0, limit=2)
    assert cursor is not None
    second_page, last = ledger.items(after=cursor, limit=2)

    assert [item.sku for item in first_page + second_page] == ["FIFO-1", "AVG-1", "BOLT-6"]
    assert first_page[0].name == "Bolt, renamed"
    assert last is None


def test_locations_are_listed_in_registration_order(ledger: Ledger) -> None:
    found, cursor = ledger.locations(after=0, limit=10)

    assert [(location.code, location.name) for location in found] == [
        ("WH-1", "Main warehouse"), ("WH-2", "Shop")]
    assert cursor is None
