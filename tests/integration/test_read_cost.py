"""The reads' cost does not grow with a line's ended holds or paid ledger
rows (SPEC v1.1): the same read on a line carrying a million ended holds and
a million ledger rows touches about as many buffers as on a fresh line.
Buffers, not time: they are the same on any machine."""

from __future__ import annotations

import json

import pytest

from support.db import call

# A long harness: the default run takes it on the first server version only (conftest.py).
pytestmark = pytest.mark.first_version_by_default

HISTORY = 1_000_000
READS = [
    "SELECT * FROM credit.get_available('w', %(r)s)",
    "SELECT * FROM credit.can_reserve('w', %(r)s, 1)",
    "SELECT * FROM credit.get_reservation('w', %(r)s, 'keep')",
    "SELECT * FROM credit.list_reservations('w', %(r)s)",
    "SELECT * FROM credit.list_reservations('w', %(r)s, 'converted')",
    "SELECT * FROM credit.list_reservations('w', %(r)s, NULL, NULL, 5)",
    "SELECT * FROM credit.list_reservations('w', %(r)s, 'released', NULL, 5)",
    "SELECT * FROM credit.list_lines('w', %(before)s, 1)",
    "SELECT overdue_amount, active_holds FROM credit.line_summary WHERE retailer_id = %(r)s",
]


def buffers(conn, sql: str, params: dict) -> int:
    conn.execute(sql, params)  # plans and catalog caches warm, as in a running application
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    top = (plan["QUERY PLAN"] if isinstance(plan["QUERY PLAN"], list) else json.loads(plan["QUERY PLAN"]))[0]
    node = top["Plan"]
    return node["Shared Hit Blocks"] + node["Shared Read Blocks"]


@pytest.fixture
def lines(conn):
    """'small' and 'big' alike (an active hold, a converted one, an unpaid
    debit), but 'big' also has HISTORY released holds and HISTORY payments."""
    for r in ("a-small", "b-big"):
        call(conn, "open_line", "w", r, 10**9)
        call(conn, "reserve_credit", "w", r, "keep", 10)
        call(conn, "reserve_credit", "w", r, "sold", 10)
        call(conn, "convert_to_debit", "w", r, "sold", 5)
    conn.execute("""
        INSERT INTO credit.reservation (line_id, order_ref, amount, status, released_at, released_amount)
        SELECT l.id, 'old' || g, 1, 'released', now(), 1
          FROM credit.line l, generate_series(1, %(n)s) g WHERE l.retailer_id = 'b-big'""", {"n": HISTORY})
    conn.execute("""
        INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref)
        SELECT l.id, 'CREDIT', 1, 'paid' || g
          FROM credit.line l, generate_series(1, %(n)s) g WHERE l.retailer_id = 'b-big'""", {"n": HISTORY})
    conn.execute("ANALYZE credit.reservation")
    conn.execute("ANALYZE credit.ledger_entry")
    return conn


def test_reads_cost_the_same_on_a_line_with_a_million_ended_holds_and_ledger_rows(lines):
    for sql in READS:
        small = buffers(lines, sql, {"r": "a-small", "before": "a"})
        big = buffers(lines, sql, {"r": "b-big", "before": "b"})
        # A bigger index is a level deeper: a few pages more, never thousands.
        assert big <= small + 8, (sql, small, big)
    # The measure can see growth: statement() reads the line's whole ledger.
    whole = "SELECT * FROM credit.statement('w', %(r)s, current_date, current_date)"
    assert buffers(lines, whole, {"r": "b-big"}) > 100 * buffers(lines, whole, {"r": "a-small"})
