"""Bad input: an SQL error of class 22 naming the argument, and nothing written."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import psycopg
import pytest
from psycopg.rows import dict_row

from support.db import API, call, table_counts

W, R = "w", "r"
NAN, INF = D("NaN"), D("Infinity")

# (function, arguments, the argument the message must name)
BAD = [
    ("open_line", (None, R, 100), "wholesaler_id"),
    ("open_line", ("", R, 100), "wholesaler_id"),
    ("open_line", ("   ", R, 100), "wholesaler_id"),
    ("open_line", ("x" * 201, R, 100), "wholesaler_id"),
    ("open_line", ("w\n1", R, 100), "wholesaler_id"),
    ("open_line", (W, "r\x01", 100), "retailer_id"),
    ("open_line", (W, None, 100), "retailer_id"),
    ("open_line", (W, R, None), "credit_limit"),
    ("open_line", (W, R, -1), "credit_limit"),
    ("open_line", (W, R, NAN), "credit_limit"),
    ("open_line", (W, R, INF), "credit_limit"),
    ("open_line", (W, R, D("10.005")), "credit_limit"),
    ("open_line", (W, R, D("1e15") + 1), "credit_limit"),
    ("open_line", (W, R, 100, "XYZ"), "currency"),
    ("open_line", (W, R, 100, "inr"), "currency"),
    ("open_line", (W, R, 100, None), "currency"),
    ("open_line", (W, R, 100, "INR", -1), "payment_terms_days"),
    ("open_line", (W, R, 100, "INR", 366), "payment_terms_days"),
    ("open_line", (W, R, 100, "INR", None), "payment_terms_days"),
    ("set_credit_limit", (W, R, -5, "why"), "credit_limit"),
    ("set_credit_limit", (W, R, 5, None), "reason"),
    ("set_credit_limit", (W, R, 5, "  "), "reason"),
    ("block_line", (W, R, None), "reason"),
    ("unblock_line", (W, "", "ok"), "retailer_id"),
    ("get_available", (None, R), "wholesaler_id"),
    ("can_reserve", (W, R, 0), "amount"),
    ("can_reserve", (W, R, NAN), "amount"),
    ("reserve_credit", (W, R, "o", None), "amount"),
    ("reserve_credit", (W, R, "o", 0), "amount"),
    ("reserve_credit", (W, R, "o", -10), "amount"),
    ("reserve_credit", (W, R, "o", NAN), "amount"),
    ("reserve_credit", (W, R, "o", INF), "amount"),
    ("reserve_credit", (W, R, "o", -INF), "amount"),
    ("reserve_credit", (W, R, "o", D("10.005")), "amount"),
    ("reserve_credit", (W, R, "o", D("0.001")), "amount"),
    ("reserve_credit", (W, R, "o", D("1000000000000000.01")), "amount"),
    ("reserve_credit", (W, R, None, 10), "order_ref"),
    ("reserve_credit", (W, R, "o" * 201, 10), "order_ref"),
    ("reserve_credit", (W, R, "o\t", 10), "order_ref"),
    # The fast path checks only what it writes; bad line ids match no line and are refused after it.
    ("reserve_credit", (None, R, "o", 10), "wholesaler_id"),
    ("reserve_credit", (" ", R, "o", 10), "wholesaler_id"),
    ("reserve_credit", (W, "r" * 201, "o", 10), "retailer_id"),
    ("reserve_credit", (W, "r\x7f", "o", 10), "retailer_id"),
    ("reserve_credit", (W, R, "  ", 10), "order_ref"),
    ("reserve_credit", (W, R, "o", 10, dt.timedelta(0)), "expires_in"),
    ("reserve_credit", (W, R, "o", 10, dt.timedelta(seconds=-1)), "expires_in"),
    ("release_reservation", (W, R, ""), "order_ref"),
    ("release_reservation", (W, R, "o", " "), "reason"),
    ("convert_to_debit", (W, R, "o", 0), "amount"),
    ("convert_to_debit", (W, R, "o", D("5.555")), "amount"),
    ("convert_to_debit", (W, R, "o", None, "infinity"), "due_date"),
    ("record_payment", (W, R, None, 10), "payment_ref"),
    ("record_payment", (W, R, "p", -10), "amount"),
    ("record_payment", (W, R, "p", NAN), "amount"),
    ("reverse_debit", (W, R, "o", None, 10, "r"), "reversal_ref"),
    ("reverse_debit", (W, R, None, "rv", 10, "r"), "order_ref"),
    ("reverse_debit", (W, R, "o", "rv", 0, "r"), "amount"),
    ("reverse_debit", (W, R, "o", "rv", 10, None), "reason"),
    ("adjust_balance", (W, R, "a", 0, "r"), "amount"),
    ("adjust_balance", (W, R, "a", D("-1e15") - 1, "r"), "amount"),
    ("adjust_balance", (W, R, "", 1, "r"), "adjustment_ref"),
    ("adjust_balance", (W, R, "a", 1, "x" * 1001), "reason"),
    ("expire_reservations", (0,), "max_count"),
    ("expire_reservations", (None,), "max_count"),
    ("statement", (W, R, None, dt.date(2030, 1, 1)), "from_date"),
    ("statement", (W, R, dt.date(2030, 1, 2), dt.date(2030, 1, 1)), "from_date"),
    # v1.1
    ("set_credit_limit", (W, R, 5, "why", dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)), "valid_until"),
    ("set_credit_limit", (W, R, 5, "why", "infinity"), "valid_until"),
    ("set_credit_limit", (W, R, NAN, "why", dt.datetime(2999, 1, 1, tzinfo=dt.timezone.utc)), "credit_limit"),
    ("set_overdue_policy", (None, R, 10), "wholesaler_id"),
    ("set_overdue_policy", (W, R, -1), "grace_days"),
    ("set_overdue_policy", (W, R, 366), "grace_days"),
    ("set_overdue_policy", (W, R, 10, -1), "max_overdue_amount"),
    ("set_overdue_policy", (W, R, 10, None), "max_overdue_amount"),
    ("set_overdue_policy", (W, R, 10, NAN), "max_overdue_amount"),
    ("set_overdue_policy", (W, R, 10, D("1.005")), "max_overdue_amount"),
    ("set_overdue_policy", (W, R, 10, 0, " "), "reason"),
    ("get_reservation", (W, R, None), "order_ref"),
    ("get_reservation", (W, "r\n", "o"), "retailer_id"),
    ("list_reservations", ("", R), "wholesaler_id"),
    ("list_reservations", (W, R, "bogus"), "status"),
    ("list_reservations", (W, R, "active", None, 0), "max_rows"),
    ("list_reservations", (W, R, "active", None, 1001), "max_rows"),
    ("list_reservations", (W, R, "active", None, None), "max_rows"),
    ("list_lines", (None,), "wholesaler_id"),
    ("list_lines", (W, " "), "after_retailer_id"),
    ("list_lines", (W, None, 0), "max_rows"),
    ("aging", (None,), "as_of"),
    ("aging", ("infinity",), "as_of"),
    ("aging", (dt.date(2030, 1, 1), "x" * 201), "wholesaler_id"),
    ("aging", (dt.date(2030, 1, 1), W, "\x01"), "retailer_id"),
    # v1.1 bulk calls: the element is named (test_batch.py has every array argument)
    ("reserve_credit_batch", ([W], [R], ["o"], [0]), "amounts[1]"),
    ("reserve_credit_batch", ([W, W], [R, R], ["o", None], [1, 1]), "order_refs[2]"),
    ("reserve_credit_batch", ([W], [R, R], ["o"], [1]), "retailer_ids"),
    ("convert_to_debit_batch", ([W, W], [R, ""], ["o", "o2"], None), "retailer_ids[2]"),
    ("convert_to_debit_batch", ([W], [R], ["o"], [D("5.555")]), "amounts[1]"),
    ("record_payment_batch", ([], [], [], []), "wholesaler_ids"),
    ("record_payment_batch", ([W], [R], ["p"], [NAN]), "amounts[1]"),
    # v1.2: orders as they happen
    ("amend_reservation", (W, R, "o", 20, None), "amend_ref"),
    ("amend_reservation", (W, R, "o", 20, " "), "amend_ref"),
    ("amend_reservation", (W, R, "o", 0, "a1"), "amount"),
    ("amend_reservation", (W, R, "o", NAN, "a1"), "amount"),
    ("amend_reservation", (W, R, "o", D("20.001"), "a1"), "amount"),
    ("amend_reservation", (W, R, None, 20, "a1"), "order_ref"),
    ("amend_reservation", (W, "r\n", "o", 20, "a1"), "retailer_id"),
    ("convert_to_debit", (W, R, "o", 5, None, " "), "shipment_ref"),
    ("convert_to_debit", (W, R, "o", 5, None, "s" * 201), "shipment_ref"),
    ("convert_to_debit", (W, R, "o", 5, None, "o"), "shipment_ref"),
    ("convert_to_debit", (W, R, "o", 0, None, "s1"), "amount"),
    ("record_payment", (W, R, "p", 5, ["o2", None]), "applies_to[2]"),
    ("record_payment", (W, R, "p", 5, ["o2", " "]), "applies_to[2]"),
    ("record_payment", (W, R, "p", 5, ["o2", "x", "o2"]), "applies_to[3]"),
    ("record_payment", (W, R, "p", 5, [f"x{i}" for i in range(1001)]), "applies_to"),
    ("record_payment", (W, R, "p", 5, [["o2"], ["x"]]), "applies_to"),
    ("convert_to_debit_batch", ([W, W], [R, R], ["o", "o2"], None, [None, "o2"]), "shipment_refs[2]"),
    ("convert_to_debit_batch", ([W, W], [R, R], ["o", "o2"], None, ["s\x01", None]), "shipment_refs[1]"),
    ("convert_to_debit_batch", ([W, W], [R, R], ["o", "o2"], None, ["s"]), "shipment_refs"),
    # v1.2 events
    ("events_after", (-1,), "after_event_id"),
    ("events_after", (None,), "after_event_id"),
    ("events_after", (0, 0), "max_rows"),
    ("events_after", (0, 1001), "max_rows"),
    ("events_after", (0, None), "max_rows"),
    ("events_after", (0, 100, " "), "wholesaler_id"),
    ("events_after", (0, 100, "w" * 201), "wholesaler_id"),
    # A cursor this feed never gave: events that will get the ids up to it would be skipped.
    ("events_after", (10**9,), "after_event_id"),
]

@pytest.fixture(scope="module")
def booked(cluster):
    """A line with a hold, a debit and a payment, so that a stray write shows.
    One database for every case of a server version: each case compares the
    tables before and after its own call, so a stray write still fails the
    case that made it (and the cases spare ~100 copies of the template)."""
    name = cluster.create_database()
    try:
        with psycopg.connect(cluster.dsn(name), autocommit=True, row_factory=dict_row) as conn:
            call(conn, "open_line", W, R, 100_000)
            call(conn, "reserve_credit", W, R, "o", 10)
            call(conn, "reserve_credit", W, R, "o2", 10)
            call(conn, "convert_to_debit", W, R, "o2")
            call(conn, "record_payment", W, R, "p0", 1)
            yield conn
    finally:
        cluster.drop_database(name)


def test_the_table_is_broad():
    assert len(BAD) >= 40
    assert {fn for fn, _, _ in BAD} == set(API) - {"reconcile"}  # every function that takes arguments


@pytest.mark.parametrize("fn, args, argument", BAD, ids=[f"{fn}-{arg}-{i}" for i, (fn, _, arg) in enumerate(BAD)])
def test_bad_input_is_refused_and_nothing_written(booked, fn, args, argument):
    before = table_counts(booked)
    types = booked.execute("SELECT proargtypes::regtype[]::text[] AS t FROM pg_proc WHERE oid = %s::regproc",
                           [f"credit.{fn}"]).fetchone()["t"]
    casts = ", ".join(f"%s::{t}" for t in types[:len(args)])
    with pytest.raises(psycopg.Error) as err:
        booked.execute(f"SELECT * FROM credit.{fn}({casts})", args)
    assert err.value.sqlstate.startswith("22"), err.value
    assert argument in err.value.diag.message_primary
    assert table_counts(booked) == before


# credit._id_ok, the fast path's one-regex test, must accept exactly what
# credit._id_problem accepts, or reserve_credit's fast path would write a value
# its careful path refuses.
TRICKY_IDS = ["a", " a", "a ", "  x  ", "", " ", "   ", "\t", "a\tb", "a\nb", "a\x1fb", "a\x7fb",
              "\u00a0", "\u00a0a", "é", "日本", "a\u0085b", "\u200b", "x" * 200, "x" * 201, " " * 200 + "x",
              "x" * 199 + "\n", "'; DROP TABLE credit.line; --", "%s", "\\", None]


def test_the_fast_id_test_agrees_with_the_full_one(conn):
    rows = conn.execute("SELECT v, credit._id_ok(v) AS fast, credit._id_problem(v, 'v') IS NULL AS full "
                        "FROM unnest(%s::text[]) v", [TRICKY_IDS]).fetchall()
    assert [(r["v"], bool(r["fast"])) for r in rows] == [(r["v"], r["full"]) for r in rows]
    assert sum(r["full"] for r in rows) >= 8  # the table holds good ids as well as bad ones
