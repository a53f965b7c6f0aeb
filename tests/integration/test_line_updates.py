"""Each call that moves a line's totals updates the line row once (issue 18):
a second UPDATE of the same row in one transaction writes another row
version and runs the foreign-key check on the line's currency again, which a
first UPDATE of a row locked FOR NO KEY UPDATE skips. Counted by the
server's own per-transaction statistics, not by time."""

from __future__ import annotations

import pytest

from support.db import call

W, R = "w", "r"


def line_updates(conn) -> int:
    return conn.execute("SELECT n_tup_upd AS n FROM pg_stat_xact_user_tables"
                        " WHERE relid = 'credit.line'::regclass").fetchone()["n"]


@pytest.fixture
def book(conn):
    call(conn, "open_line", W, R, 10_000)
    for ref in ("whole", "parts", "raised"):
        call(conn, "reserve_credit", W, R, ref, 100)
    call(conn, "reserve_credit", W, R, "invoice", 100)
    call(conn, "convert_to_debit", W, R, "invoice")
    return conn


CALLS = [
    ("a reservation", "reserve_credit", (W, R, "new", 10)),
    ("a raise", "amend_reservation", (W, R, "raised", 150, "up")),
    ("a cut", "amend_reservation", (W, R, "raised", 50, "down")),
    ("a final conversion", "convert_to_debit", (W, R, "whole")),
    ("a shipment", "convert_to_debit", (W, R, "parts", 40, None, "parts/1")),
    ("a payment settling an invoice", "record_payment", (W, R, "pay", 30)),
    ("a remittance naming it", "record_payment", (W, R, "remit", 30, ["invoice"])),
    ("a release", "release_reservation", (W, R, "whole")),
]


@pytest.mark.parametrize("what, fn, args", CALLS, ids=[c[0] for c in CALLS])
def test_a_call_updates_its_line_row_once(book, what, fn, args):
    with book.transaction():
        before = line_updates(book)
        assert call(book, fn, *args)["code"] == "ok"
        assert line_updates(book) - before == 1, what
