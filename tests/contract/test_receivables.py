"""SPEC v1.1 "Reads for applications" and "Receivables", row by row, from
plain SQL (and the application role, which has no table privileges) and from
the Python client."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal as D

import psycopg
import pytest
from psycopg.rows import dict_row

import pgcredit as pc
from support.db import APP_USER, call
from pgcredit import AsyncCreditClient

W, R = "w", "r"


@pytest.fixture
def book(conn):
    """A line with two debits (one 40 days past due, one due in 10 days) and a hold."""
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    call(conn, "open_line", W, R, 1000)
    for ref, amount in (("late", 300), ("soon", 200), ("held", 50)):
        call(conn, "reserve_credit", W, R, ref, amount)
    call(conn, "convert_to_debit", W, R, "late", None, today - dt.timedelta(days=40))
    call(conn, "convert_to_debit", W, R, "soon", None, today + dt.timedelta(days=10))
    return conn, today


def open_items(conn):
    return [(r["due_date"], r["unpaid"]) for r in conn.execute(
        "SELECT due_date, unpaid FROM credit.open_item ORDER BY due_date, entry_id")]


def test_payments_settle_the_oldest_due_date_first(book):
    conn, today = book
    a = call(conn, "get_available", W, R)
    assert (a["past_due"], a["oldest_unpaid_due_date"]) == (D(300), today - dt.timedelta(days=40))
    call(conn, "record_payment", W, R, "p1", 100)
    assert open_items(conn) == [(today - dt.timedelta(days=40), D(200)), (today + dt.timedelta(days=10), D(200))]
    call(conn, "record_payment", W, R, "p2", 250)  # clears 'late', then 50 of 'soon'
    assert open_items(conn) == [(today + dt.timedelta(days=10), D(150))]
    a = call(conn, "get_available", W, R)
    assert (a["past_due"], a["oldest_unpaid_due_date"], a["outstanding"]) == \
        (D(0), today + dt.timedelta(days=10), D(150))


def test_ties_on_due_date_settle_the_lower_entry_first(conn):
    call(conn, "open_line", W, R, 1000)
    day = dt.date(2030, 6, 1)
    for ref in ("a", "b"):
        call(conn, "reserve_credit", W, R, ref, 100)
        call(conn, "convert_to_debit", W, R, ref, None, day)
    call(conn, "record_payment", W, R, "p", 60)
    rows = conn.execute("SELECT e.ref, o.unpaid FROM credit.open_item o JOIN credit.ledger_entry e"
                        " ON e.id = o.entry_id ORDER BY e.id").fetchall()
    assert [(r["ref"], r["unpaid"]) for r in rows] == [("a", D(40)), ("b", D(100))]


def test_unapplied_credit_settles_items_as_they_appear(conn):
    call(conn, "open_line", W, R, 1000)
    call(conn, "record_payment", W, R, "advance", 120)
    assert call(conn, "aging", dt.date(2100, 1, 1), W, R)["unapplied_credit"] == D(120)
    call(conn, "reserve_credit", W, R, "o", 100)
    call(conn, "convert_to_debit", W, R, "o", None, dt.date(2000, 1, 1))  # due long ago, and paid already
    a = call(conn, "get_available", W, R)
    assert (a["outstanding"], a["past_due"], a["oldest_unpaid_due_date"]) == (D(-20), D(0), None)
    row = conn.execute("SELECT * FROM credit.aging()").fetchone()
    assert (row["unapplied_credit"], row["outstanding"], row["days_over_90"]) == (D(20), D(-20), D(0))


def test_a_reversal_reduces_its_own_debit_first_and_frees_what_was_paid(book):
    conn, today = book
    call(conn, "record_payment", W, R, "p", 300)  # 'late' is paid in full
    call(conn, "reverse_debit", W, R, "soon", "rv1", 50, "damaged")  # its own debit, not the oldest
    assert open_items(conn) == [(today + dt.timedelta(days=10), D(150))]
    call(conn, "reverse_debit", W, R, "late", "rv2", 100, "returned")  # already paid: 100 is freed
    assert open_items(conn) == [(today + dt.timedelta(days=10), D(50))]
    assert call(conn, "get_available", W, R)["outstanding"] == D(50)


def test_adjustments_positive_is_due_today_negative_settles(conn):
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    call(conn, "open_line", W, R, 1000)
    call(conn, "adjust_balance", W, R, "fee", 30, "late fee")
    assert open_items(conn) == [(today, D(30))]
    assert conn.execute("SELECT due_date FROM credit.ledger_entry").fetchone()["due_date"] == today
    call(conn, "adjust_balance", W, R, "waive", -10, "goodwill")
    assert open_items(conn) == [(today, D(20))]
    assert call(conn, "get_available", W, R)["past_due"] == D(0)  # due today is not yet past due
    assert conn.execute("SELECT overdue_amount FROM credit.line_summary").fetchone()["overdue_amount"] == D(0)


def test_line_summary_overdue_amount_is_past_due(book):
    conn, _ = book
    call(conn, "record_payment", W, R, "p", 120)
    row = conn.execute("SELECT overdue_amount FROM credit.line_summary").fetchone()
    assert row["overdue_amount"] == call(conn, "get_available", W, R)["past_due"] == D(180)


def test_aging_buckets_and_as_of(book):
    conn, today = book
    call(conn, "record_payment", W, R, "p", 100)
    row = call(conn, "aging", today, W, R)
    assert {k: row[k] for k in ("not_due", "days_1_30", "days_31_60", "days_61_90", "days_over_90",
                                "unapplied_credit", "outstanding")} == \
        {"not_due": D(200), "days_1_30": D(0), "days_31_60": D(200), "days_61_90": D(0),
         "days_over_90": D(0), "unapplied_credit": D(0), "outstanding": D(400)}
    assert row["oldest_unpaid_due_date"] == today - dt.timedelta(days=40)
    later = call(conn, "aging", today + dt.timedelta(days=60), W, R)  # 'late' 100, 'soon' 50 days past due
    assert (later["days_61_90"], later["days_31_60"], later["days_over_90"]) == (D(0), D(200), D(200))
    # Nothing was made before today, so as of yesterday there is nothing to age.
    assert conn.execute("SELECT * FROM credit.aging(current_date - 1)").fetchall() == []
    assert conn.execute("SELECT * FROM credit.aging(wholesaler_id => 'nobody')").fetchall() == []


def test_aging_as_of_a_past_day_reads_what_was_made_by_then(book):
    """Backdates the book by ten days (as a superuser may in a test database:
    the append-only triggers are lifted for the UPDATE and restored), then
    pays today: aging as of five days ago still shows the old picture."""
    conn, today = book
    conn.execute("ALTER TABLE credit.ledger_entry DISABLE TRIGGER ledger_entry_append_only")
    conn.execute("UPDATE credit.ledger_entry SET created_at = created_at - interval '10 days'")
    conn.execute("ALTER TABLE credit.ledger_entry ENABLE ALWAYS TRIGGER ledger_entry_append_only")
    call(conn, "record_payment", W, R, "p", 500)
    before = call(conn, "aging", today - dt.timedelta(days=5), W, R)
    assert (before["days_31_60"], before["not_due"], before["outstanding"]) == (D(300), D(200), D(500))
    assert conn.execute("SELECT * FROM credit.aging(current_date)").fetchall() == []  # all paid today


def test_overdue_policy_refuses_and_logs_in_spec_order(book):
    conn, today = book
    assert call(conn, "set_overdue_policy", W, R, 30, 0, "terms") == \
        {"code": "ok", "grace_days": 30, "max_overdue_amount": D("0.00")}
    refused = call(conn, "reserve_credit", W, R, "new", 10)
    assert (refused["code"], refused["reservation_id"]) == ("overdue", None)
    assert call(conn, "can_reserve", W, R, 10)["code"] == "overdue"
    assert conn.execute("SELECT code, order_ref FROM credit.refusal").fetchall() == \
        [{"code": "overdue", "order_ref": "new"}]
    # replay first, then line_blocked before overdue, insufficient_credit after it
    assert call(conn, "reserve_credit", W, R, "held", 50)["code"] == "ok"
    call(conn, "block_line", W, R, "review")
    assert call(conn, "reserve_credit", W, R, "new", 10)["code"] == "line_blocked"
    call(conn, "unblock_line", W, R, "done")
    assert call(conn, "reserve_credit", W, R, "new", 10_000)["code"] == "overdue"
    # 40 days late: a grace of 45 tolerates it, and so does a tolerance of 300
    call(conn, "set_overdue_policy", W, R, 45)
    assert call(conn, "reserve_credit", W, R, "new", 10)["code"] == "ok"
    call(conn, "set_overdue_policy", W, R, 0, 300)
    assert call(conn, "reserve_credit", W, R, "new2", 10)["code"] == "ok"
    call(conn, "set_overdue_policy", W, R, 0, D("299.99"))
    assert call(conn, "reserve_credit", W, R, "new3", 10_000)["code"] == "overdue"
    call(conn, "record_payment", W, R, "p", D("0.02"))  # 299.98 late now: tolerated
    assert call(conn, "reserve_credit", W, R, "new3", 10)["code"] == "ok"
    assert call(conn, "set_overdue_policy", W, R, None)["grace_days"] is None
    events = conn.execute("SELECT grace_days, max_overdue_amount, reason FROM credit.line_event"
                          " WHERE kind = 'overdue_policy' ORDER BY id").fetchall()
    assert [e["grace_days"] for e in events] == [30, 45, 0, 0, None] and events[0]["reason"] == "terms"


def test_overdue_by_the_passing_of_time_alone(conn):
    """A debit due today is not overdue; the same book read as of tomorrow's
    date is. Reading as of another day is what the due date does: a debit
    converted with yesterday's due date is overdue at once, with no job run."""
    call(conn, "open_line", W, R, 1000)
    call(conn, "set_overdue_policy", W, R, 0)
    call(conn, "reserve_credit", W, R, "o", 100)
    call(conn, "convert_to_debit", W, R, "o", None, conn.execute("SELECT current_date AS d").fetchone()["d"])
    assert call(conn, "reserve_credit", W, R, "o2", 10)["code"] == "ok"
    call(conn, "reserve_credit", W, R, "o3", 100)
    call(conn, "convert_to_debit", W, R, "o3", None,
         conn.execute("SELECT current_date - 1 AS d").fetchone()["d"])
    assert call(conn, "reserve_credit", W, R, "o4", 10)["code"] == "overdue"


def test_temporary_limit_ends_by_itself(conn):
    call(conn, "open_line", W, R, 100)
    call(conn, "reserve_credit", W, R, "o1", 80)
    until = conn.execute("SELECT now() + interval '300 milliseconds' AS t").fetchone()["t"]
    assert call(conn, "set_credit_limit", W, R, 500, "season", until)["credit_limit"] == D(500)
    a = call(conn, "get_available", W, R)
    assert (a["credit_limit"], a["available"], a["limit_valid_until"]) == (D(500), D(420), until)
    assert call(conn, "reserve_credit", W, R, "o2", 300)["code"] == "ok"
    assert conn.execute("SELECT credit_limit FROM credit.line_summary").fetchone()["credit_limit"] == D(500)
    time.sleep(0.4)
    a = call(conn, "get_available", W, R)
    assert (a["credit_limit"], a["available"], a["limit_valid_until"]) == (D(100), D(-280), None)
    assert call(conn, "reserve_credit", W, R, "o3", 1)["code"] == "insufficient_credit"
    assert call(conn, "release_reservation", W, R, "o2")["code"] == "ok"  # holds granted are not revoked
    assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
    # A permanent limit ends a temporary one at once.
    call(conn, "set_credit_limit", W, R, 900, "season", conn.execute(
        "SELECT now() + interval '1 hour' AS t").fetchone()["t"])
    call(conn, "set_credit_limit", W, R, 200, "review")
    assert (call(conn, "get_available", W, R)["credit_limit"], call(conn, "get_available", W, R)["limit_valid_until"]) \
        == (D(200), None)
    assert [(e["new_limit"], e["valid_until"] is not None) for e in conn.execute(
        "SELECT new_limit, valid_until FROM credit.line_event WHERE kind = 'limit_changed' ORDER BY id")] == \
        [(D(500), True), (D(900), True), (D(200), False)]


def test_get_reservation_every_state(conn):
    call(conn, "open_line", W, R, 1000)
    assert call(conn, "get_reservation", W, "nobody", "o")["code"] == "line_not_found"
    assert call(conn, "get_reservation", W, R, "o")["code"] == "reservation_not_found"
    call(conn, "reserve_credit", W, R, "o", 100)
    call(conn, "convert_to_debit", W, R, "o", 60, dt.date(2030, 1, 31))
    row = call(conn, "get_reservation", W, R, "o")
    assert list(row) == ["code", "reservation_id", "status", "amount", "expires_at", "created_at", "released_at",
                         "release_reason", "converted_at", "converted_amount", "released_amount",
                         "ledger_entry_id", "due_date", "remaining_amount"]  # v1.2 added the last
    assert (row["status"], row["converted_amount"], row["released_amount"], row["due_date"]) == \
        ("converted", D(60), D(40), dt.date(2030, 1, 31))
    call(conn, "reserve_credit", W, R, "c", 10)
    call(conn, "release_reservation", W, R, "c", "customer cancelled")
    row = call(conn, "get_reservation", W, R, "c")
    assert (row["status"], row["release_reason"], row["released_at"] is not None) == \
        ("released", "customer cancelled", True)
    call(conn, "reserve_credit", W, R, "e", 10, dt.timedelta(milliseconds=10))
    time.sleep(0.05)
    assert call(conn, "get_reservation", W, R, "e")["status"] == "expired"  # before any sweep
    assert conn.execute("SELECT status FROM credit.reservation WHERE order_ref = 'e'").fetchone()["status"] == "active"


def test_list_reservations_pages_by_status(conn):
    call(conn, "open_line", W, R, 10_000)
    for i in range(7):
        call(conn, "reserve_credit", W, R, f"o{i}", 10)
    call(conn, "release_reservation", W, R, "o1")
    call(conn, "convert_to_debit", W, R, "o2")
    call(conn, "reserve_credit", W, R, "gone", 10, dt.timedelta(milliseconds=10))
    time.sleep(0.05)

    def page(status="active", after=None, n=100):
        return [(r["order_ref"], r["status"]) for r in conn.execute(
            "SELECT * FROM credit.list_reservations(%s, %s, %s, %s, %s)", [W, R, status, after, n])]

    assert page() == [(f"o{i}", "active") for i in (0, 3, 4, 5, 6)]
    assert page("expired") == [("gone", "expired")]
    assert page("released") == [("o1", "released")] and page("converted") == [("o2", "converted")]
    everything = page(None)
    assert [s for _, s in everything] == ["active", "released", "converted", "active", "active", "active",
                                          "active", "expired"]
    first = conn.execute("SELECT * FROM credit.list_reservations(%s, %s, NULL, NULL, 3)", [W, R]).fetchall()
    rest = page(None, first[-1]["reservation_id"], 100)
    assert [r["order_ref"] for r in first] + [o for o, _ in rest] == [o for o, _ in everything]
    with pytest.raises(psycopg.errors.NoDataFound, match="^line_not_found"):
        conn.execute("SELECT * FROM credit.list_reservations('w', 'nobody')")


def test_list_lines_pages_by_retailer(conn):
    for r in ("c", "a", "b"):
        call(conn, "open_line", W, r, 100)
    call(conn, "open_line", "other", "a", 100)
    call(conn, "reserve_credit", W, "b", "o", 30)
    rows = conn.execute("SELECT * FROM credit.list_lines('w', NULL, 2)").fetchall()
    assert [r["retailer_id"] for r in rows] == ["a", "b"]
    assert list(rows[0]) == ["retailer_id", "line_id", "status", "currency", "credit_limit", "reserved",
                             "outstanding", "available", "past_due"]
    assert (rows[1]["reserved"], rows[1]["available"]) == (D(30), D(70))
    assert [r["retailer_id"] for r in conn.execute("SELECT * FROM credit.list_lines('w', 'b')")] == ["c"]
    assert conn.execute("SELECT * FROM credit.list_lines('nobody')").fetchall() == []


def test_every_money_column_reads_with_scale_2(book):
    """0.00, never 0: what a caller in any language prints is what it read."""
    conn, today = book
    call(conn, "record_payment", W, R, "p", 1)
    call(conn, "open_line", W, "fresh", 5)  # totals that never moved
    queries = [
        "SELECT * FROM credit.open_line('w', 'fresh', 5)",
        "SELECT * FROM credit.get_available('w', 'fresh')",
        "SELECT * FROM credit.get_available('w', 'r')",
        "SELECT * FROM credit.can_reserve('w', 'fresh', 1)",
        "SELECT * FROM credit.can_reserve('w', 'fresh', 9)",
        "SELECT * FROM credit.reserve_credit('w', 'fresh', 'x', 1)",
        "SELECT * FROM credit.reserve_credit('w', 'fresh', 'x', 1)",
        "SELECT * FROM credit.reserve_credit('w', 'fresh', 'y', 100)",
        "SELECT * FROM credit.release_reservation('w', 'fresh', 'x')",
        "SELECT * FROM credit.set_credit_limit('w', 'fresh', 7, 'why')",
        "SELECT * FROM credit.convert_to_debit('w', 'r', 'held', 1)",
        "SELECT * FROM credit.record_payment('w', 'r', 'p9', 1)",
        "SELECT * FROM credit.set_overdue_policy('w', 'r', 1)",
        "SELECT * FROM credit.get_reservation('w', 'r', 'held')",
        "SELECT * FROM credit.list_reservations('w', 'r', NULL)",
        "SELECT * FROM credit.list_lines('w')",
        "SELECT * FROM credit.aging()",
        "SELECT * FROM credit.aging(current_date + 100)",
        "SELECT * FROM credit.line_summary",
        "SELECT * FROM credit.monitor_totals",
        "SELECT * FROM credit.monitor_book",
        "SELECT * FROM credit.monitor_lines",
    ]
    checked = 0
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        for sql in queries:
            cur.execute(sql)
            names = [d.name for d in cur.description]
            for row in cur.fetchall():
                for name, value in zip(names, row):
                    if isinstance(value, D) and name not in ("utilization_pct",):
                        assert value.as_tuple().exponent == -2, (sql, name, value)
                        checked += 1
    assert checked > 80


def test_reconcile_proves_the_allocation(book):
    conn, _ = book
    call(conn, "record_payment", W, R, "p", 100)
    assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
    conn.execute("UPDATE credit.open_item SET unpaid = unpaid + 1 WHERE due_date < current_date")
    found = {r["check_name"] for r in conn.execute("SELECT * FROM credit.reconcile()")}
    assert {"allocation_identity", "open_item"} <= found
    conn.execute("UPDATE credit.open_item SET unpaid = unpaid - 1 WHERE due_date < current_date")
    conn.execute("UPDATE credit.line SET unapplied = 5")
    found = {r["check_name"] for r in conn.execute("SELECT * FROM credit.reconcile()")}
    assert {"allocation_identity", "unapplied_credit"} <= found
    conn.execute("UPDATE credit.line SET unapplied = 0, oldest_unpaid_due = current_date")
    assert [r["check_name"] for r in conn.execute("SELECT * FROM credit.reconcile()")] == ["unapplied_credit"]
    conn.execute("UPDATE credit.line SET oldest_unpaid_due = (SELECT min(due_date) FROM credit.open_item)")
    conn.execute("DELETE FROM credit.open_item WHERE due_date > current_date")
    assert {r["check_name"] for r in conn.execute("SELECT * FROM credit.reconcile()")} == \
        {"allocation_identity", "open_item"}


@pytest.mark.direct_only("expects the app role to be refused a table, and a proxy has no tables; "
                         "test_proxy.py checks the app role's calls and privileges on the proxy")
def test_the_app_role_shows_a_retailer_everything_without_table_privileges(cluster, dbname, book):
    conn, today = book
    call(conn, "record_payment", W, R, "p", 100)
    call(conn, "set_overdue_policy", W, R, 0)
    with psycopg.connect(cluster.dsn(dbname, user=APP_USER), autocommit=True, row_factory=dict_row) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM credit.open_item")
        assert [r["order_ref"] for r in app.execute("SELECT * FROM credit.list_reservations('w', 'r')")] == ["held"]
        assert call(app, "get_reservation", W, R, "late")["due_date"] == today - dt.timedelta(days=40)
        assert call(app, "get_available", W, R)["past_due"] == D(200)
        assert app.execute("SELECT days_31_60 FROM credit.aging()").fetchone()["days_31_60"] == D(200)
        assert call(app, "reserve_credit", W, R, "why", 1)["code"] == "overdue"
        assert [r["retailer_id"] for r in app.execute("SELECT * FROM credit.list_lines('w')")] == ["r"]


def test_python_client_reads_and_receivables(client, conn):
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    client.open_line(W, R, D(1000))
    client.reserve_credit(W, R, "o1", D("300.00"))
    client.convert_to_debit(W, R, "o1", due_date=today - dt.timedelta(days=5))
    client.reserve_credit(W, R, "o2", D(100))
    info = client.get_reservation(W, R, "o1")
    assert isinstance(info, pc.ReservationInfo) and (info.status, info.converted_amount) == ("converted", D(300))
    with pytest.raises(pc.ReservationNotFound):
        client.get_reservation(W, R, "nope")
    assert [x.order_ref for x in client.list_reservations(W, R)] == ["o2"]
    assert [x.status for x in client.list_reservations(W, R, None, max_rows=1)] == ["converted"]
    with pytest.raises(pc.LineNotFound):
        client.list_reservations(W, "nobody")
    (line,) = client.list_lines(W)
    assert isinstance(line, pc.LineRow) and line.past_due == D(300)
    a = client.get_available(W, R)
    assert (a.past_due, a.oldest_unpaid_due_date, a.limit_valid_until) == (D(300), today - dt.timedelta(days=5), None)
    (row,) = client.aging()
    assert isinstance(row, pc.AgingRow) and (row.days_1_30, row.outstanding) == (D(300), D(300))
    assert client.aging(today - dt.timedelta(days=1)) == []
    assert client.set_overdue_policy(W, R, 3).grace_days == 3
    with pytest.raises(pc.Overdue) as err:
        client.reserve_credit(W, R, "o3", 1)
    assert err.value.result.code == "overdue"
    assert client.can_reserve(W, R, 1).code == "overdue"
    client.set_overdue_policy(W, R, None)
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    assert client.set_credit_limit(W, R, 5000, "season", until).credit_limit == D(5000)
    assert client.get_available(W, R).limit_valid_until == until
    with pytest.raises(pc.InvalidInput, match="valid_until"):
        client.set_credit_limit(W, R, 5000, "season", dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))


def test_async_client_reads(dsn):
    async def main():
        client = AsyncCreditClient(dsn)
        await client.open_line(W, R, 100)
        await client.reserve_credit(W, R, "o", 10)
        assert (await client.get_reservation(W, R, "o")).amount == D(10)
        assert [x.order_ref for x in await client.list_reservations(W, R)] == ["o"]
        assert (await client.list_lines(W))[0].reserved == D(10)
        assert await client.aging() == []
        assert (await client.set_overdue_policy(W, R, 0, D(5))).max_overdue_amount == D(5)
        await client.close()

    asyncio.run(main())


def test_the_worked_example_in_receivables_md(conn):
    """RECEIVABLES.md's table, step by step (due dates relative to today)."""
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    day = lambda n: today + dt.timedelta(days=n)  # noqa: E731
    call(conn, "open_line", W, R, 10_000)
    for ref, amount, due in (("A", 300, day(-40)), ("B", 200, day(-35))):
        call(conn, "reserve_credit", W, R, ref, amount)
        call(conn, "convert_to_debit", W, R, ref, None, due)
    call(conn, "record_payment", W, R, "pay", 350)
    assert open_items(conn) == [(day(-35), D(150))]
    call(conn, "reverse_debit", W, R, "A", "ret", 160, "returned")
    assert open_items(conn) == [] and call(conn, "aging", today, W, R)["unapplied_credit"] == D(10)
    call(conn, "reserve_credit", W, R, "C", 100)
    call(conn, "convert_to_debit", W, R, "C", None, day(30))
    assert open_items(conn) == [(day(30), D(90))]
    assert call(conn, "get_available", W, R)["outstanding"] == D(90)


def test_open_line_replay_reports_the_limit_in_force(conn):
    call(conn, "open_line", W, R, 100)
    until = conn.execute("SELECT now() + interval '1 hour' AS t").fetchone()["t"]
    call(conn, "set_credit_limit", W, R, 0, "freeze", until)
    row = call(conn, "open_line", W, R, 100)  # the same terms: a replay
    assert (row["code"], row["replayed"], row["credit_limit"], row["available"]) == ("ok", True, D(0), D(0))
