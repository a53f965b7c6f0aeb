"""The Python client's side of SPEC v1.2 "Orders as they happen": amend,
ship and remit, sync and async, typed frozen results with Decimal, and the
errors the new codes raise."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from decimal import Decimal as D

import psycopg
import pytest

import pgcredit as pc
from pgcredit import AsyncCreditClient, CreditClient

W, R = "w", "r"


def test_amend_ship_and_remit_through_the_client(client):
    client.open_line(W, R, D("5000.00"))
    client.reserve_credit(W, R, "order-9", D("1000.00"))
    up = client.amend_reservation(W, R, "order-9", D("1250.50"), "order-9/change-1")
    assert isinstance(up, pc.AmendResult) and isinstance(up.amount, D)
    assert (up.code, up.amount, up.previous_amount, up.remaining_amount, up.available) == \
        ("ok", D("1250.50"), D("1000.00"), D("1250.50"), D("3749.50"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        up.amount = D(1)
    first = client.convert_to_debit(W, R, "order-9", D(500), dt.date(2030, 1, 31), shipment_ref="order-9/1")
    assert isinstance(first, pc.ConvertResult)
    assert (first.status, first.debited_amount, first.remaining_amount, first.due_date) == \
        ("active", D(500), D("750.50"), dt.date(2030, 1, 31))
    second = client.convert_to_debit(W, R, "order-9", shipment_ref="order-9/2")
    assert (second.status, second.debited_amount, second.remaining_amount) == ("converted", D("750.50"), D(0))
    hold = client.get_reservation(W, R, "order-9")
    assert (hold.converted_amount, hold.remaining_amount, hold.ledger_entry_id) == \
        (D("1250.50"), D(0), second.ledger_entry_id)
    assert [x.remaining_amount for x in client.list_reservations(W, R, None)] == [D(0)]
    paid = client.record_payment(W, R, "bank-1", D(600), applies_to=("order-9/2",))
    assert (paid.code, paid.outstanding) == ("ok", D("650.50"))
    assert client.record_payment(W, R, "bank-1", D(600), applies_to=["order-9/2"]).replayed is True
    assert client.reconcile() == []


@pytest.mark.parametrize("setup, call, exc, code", [
    ([("reserve_credit", W, R, "o", 10), ("convert_to_debit", W, R, "o", 6, None, "o/1")],
     lambda c: c.amend_reservation(W, R, "o", 5, "a1"), pc.BelowConvertedAmount, "below_converted_amount"),
    ([("reserve_credit", W, R, "o", 10)],
     lambda c: c.amend_reservation(W, R, "o", 1_000, "a1"), pc.InsufficientCredit, "insufficient_credit"),
    ([("reserve_credit", W, R, "o", 10), ("reserve_credit", W, R, "p", 10), ("amend_reservation", W, R, "o", 5, "a")],
     lambda c: c.amend_reservation(W, R, "p", 5, "a"), pc.IdempotencyConflict, "exists_with_different_terms"),
    ([("reserve_credit", W, R, "o", 10), ("convert_to_debit", W, R, "o")],
     lambda c: c.amend_reservation(W, R, "o", 5, "a"), pc.ReservationConverted, "reservation_converted"),
    ([("reserve_credit", W, R, "o", 10), ("convert_to_debit", W, R, "o", 4, None, "s")],
     lambda c: c.convert_to_debit(W, R, "o", 7, shipment_ref="s2"), pc.ExceedsReservationAmount,
     "exceeds_reservation_amount"),
    ([("reserve_credit", W, R, "o", 10), ("convert_to_debit", W, R, "o", 4, None, "s")],
     lambda c: c.convert_to_debit(W, R, "o", 5, shipment_ref="s"), pc.IdempotencyConflict,
     "exists_with_different_amount"),
    ([], lambda c: c.record_payment(W, R, "p", 5, applies_to=["nope"]), pc.DebitNotFound, "debit_not_found"),
    ([("reserve_credit", W, R, "o", 10), ("convert_to_debit", W, R, "o"), ("record_payment", W, R, "p", 5)],
     lambda c: c.record_payment(W, R, "p", 5, applies_to=["o"]), pc.IdempotencyConflict,
     "exists_with_different_terms"),
])
def test_new_codes_raise_typed_errors_unless_check_false(client, setup, call, exc, code):
    client.open_line(W, R, 100)
    for name, *args in setup:
        getattr(client, name)(*args)
    with pytest.raises(exc) as err:
        call(client)
    assert err.value.result.code == code and isinstance(err.value, pc.CreditRefused)


def test_bad_input_and_floats_are_refused_before_anything_is_written(client):
    client.open_line(W, R, 100)
    client.reserve_credit(W, R, "o", 10)
    with pytest.raises(TypeError, match="float"):
        client.amend_reservation(W, R, "o", 12.5, "a1")
    with pytest.raises(TypeError, match="sequence of refs"):
        client.record_payment(W, R, "p", 5, applies_to="o")
    with pytest.raises(pc.InvalidInput, match=r"applies_to\[2\]"):
        client.record_payment(W, R, "p", 5, applies_to=["x", "x"])
    with pytest.raises(pc.InvalidInput, match="shipment_ref"):
        client.convert_to_debit(W, R, "o", shipment_ref="o")
    assert client.get_available(W, R).outstanding == 0


def test_batch_shipments_from_tuples_and_dicts(client):
    client.open_line(W, R, 1_000)
    for ref in ("a", "b"):
        client.reserve_credit(W, R, ref, 100)
    rows = client.convert_to_debit_batch([(W, R, "a", D(30), "a/1"), (W, R, "b"),
                                          {"wholesaler_id": W, "retailer_id": R, "order_ref": "a",
                                           "shipment_ref": "a/2"}])
    assert all(isinstance(x, pc.ConvertBatchItem) for x in rows)
    assert [(x.item, x.code, x.debited_amount, x.remaining_amount) for x in rows] == \
        [(1, "ok", D(30), D(70)), (2, "ok", D(100), D(0)), (3, "ok", D(70), D(0))]


def test_async_client_amends_ships_and_remits(dsn):
    async def run():
        client = AsyncCreditClient(dsn)
        try:
            await client.open_line(W, R, 1_000)
            await client.reserve_credit(W, R, "o", 300)
            up = await client.amend_reservation(W, R, "o", 400, "o/+100")
            shipped = await client.convert_to_debit(W, R, "o", 150, shipment_ref="o/1")
            paid = await client.record_payment(W, R, "p", 100, applies_to=["o/1"])
            with pytest.raises(pc.BelowConvertedAmount):
                await client.amend_reservation(W, R, "o", 100, "o/-300")
            return up, shipped, paid
        finally:
            await client.close()

    up, shipped, paid = asyncio.run(run())
    assert isinstance(up, pc.AmendResult) and (up.amount, up.previous_amount) == (D(400), D(300))
    assert (shipped.status, shipped.remaining_amount) == ("active", D(250))
    assert (paid.code, paid.outstanding) == ("ok", D(50))


def _replace_with_a_trailing_column(conn) -> None:
    """What a migration and the function files' reload do to get_reservation
    when its result gains a column: a new function of the same name and
    arguments, returning a new type with one more column (migration 0007 did
    this to get_reservation, list_reservations and convert_to_debit)."""
    columns = conn.execute("SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', '"
                           " ORDER BY attnum) AS c FROM pg_attribute"
                           " WHERE attrelid = 'credit.reservation_info'::regclass AND attnum > 0").fetchone()["c"]
    conn.execute(f"CREATE TYPE credit.reservation_info_later AS ({columns}, note text)")
    conn.execute("ALTER FUNCTION credit.get_reservation(text, text, text) SET SCHEMA public")
    conn.execute("CREATE FUNCTION credit.get_reservation(w text, r text, o text) RETURNS credit.reservation_info_later"
                 " LANGUAGE sql AS $$ SELECT x.*, 'new'::text FROM public.get_reservation(w, r, o) x $$")


@pytest.mark.direct_only("replaces a function on the server; the proxy's layer is generated from the partitions")
def test_a_result_gaining_a_column_breaks_no_prepared_call(client, conn):
    """SPEC lets result types gain trailing columns. The client names the
    columns it reads, so its prepared statements (psycopg prepares a statement
    after five uses) survive such a migration on a live connection, where one
    that reads every column (SELECT *) fails until the connection is closed."""
    source = psycopg.connect(conn.info.dsn, autocommit=True)
    live = CreditClient(source)
    try:
        live.open_line(W, R, 100)
        live.reserve_credit(W, R, "o", 10)
        for _ in range(6):
            assert live.get_reservation(W, R, "o").amount == D(10)
            source.execute("SELECT * FROM credit.get_reservation('w', 'r', 'o')")
        assert source.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 2
        _replace_with_a_trailing_column(conn)
        assert live.get_reservation(W, R, "o").amount == D(10)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="cached plan must not change result type"):
            source.execute("SELECT * FROM credit.get_reservation('w', 'r', 'o')")
    finally:
        source.close()
