"""Every function of SPEC's table and every result code, called from plain SQL."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal as D

import pytest

from support.db import call, table_counts

W, R = "w1", "r1"


@pytest.fixture
def line(conn):
    call(conn, "open_line", W, R, 100_000)
    return conn


def avail(conn, w=W, r=R):
    return call(conn, "get_available", w, r)


# -- open_line ---------------------------------------------------------------

def test_open_line_defaults_and_result_columns(conn):
    row = call(conn, "open_line", W, R, 1000)
    assert list(row) == ["code", "line_id", "credit_limit", "reserved", "outstanding", "available",
                         "status", "replayed"]
    assert row["code"] == "ok" and row["replayed"] is False
    assert (row["credit_limit"], row["available"], row["status"]) == (D(1000), D(1000), "active")
    terms = conn.execute("SELECT currency, payment_terms_days FROM credit.line").fetchone()
    assert terms == {"currency": "INR", "payment_terms_days": 30}


def test_open_line_replay_and_different_terms(line):
    first = line.execute("SELECT id FROM credit.line").fetchone()["id"]
    again = call(line, "open_line", W, R, 100_000, "INR", 30)
    assert (again["code"], again["replayed"], again["line_id"]) == ("ok", True, first)
    for args in [(99_999,), (100_000, "USD"), (100_000, "INR", 45)]:
        row = call(line, "open_line", W, R, *args)
        assert (row["code"], row["replayed"], row["line_id"]) == ("exists_with_different_terms", False, first)
    assert line.execute("SELECT count(*) FROM credit.line").fetchone()["count"] == 1


def test_open_line_replay_reports_current_totals(line):
    call(line, "reserve_credit", W, R, "o1", 300)
    row = call(line, "open_line", W, R, 100_000)
    assert (row["reserved"], row["available"], row["replayed"]) == (D(300), D(99_700), True)


# -- set_credit_limit, block_line, unblock_line ------------------------------

def test_set_credit_limit_keeps_history(line):
    call(line, "reserve_credit", W, R, "o1", 30_000)
    row = call(line, "set_credit_limit", W, R, 20_000, "risk review")
    assert row == {"code": "ok", "credit_limit": D(20_000), "reserved": D(30_000),
                   "outstanding": D(0), "available": D(-10_000)}
    ev = line.execute("SELECT kind, old_limit, new_limit, reason FROM credit.line_event ORDER BY id").fetchall()
    assert ev[-1] == {"kind": "limit_changed", "old_limit": D(100_000), "new_limit": D(20_000),
                      "reason": "risk review"}
    assert call(line, "reserve_credit", W, R, "o2", 1)["code"] == "insufficient_credit"
    assert call(line, "set_credit_limit", W, "nobody", 1, "x")["code"] == "line_not_found"


def test_block_refuses_reservations_only(line):
    call(line, "reserve_credit", W, R, "o1", 100)
    call(line, "reserve_credit", W, R, "o2", 100)
    assert call(line, "block_line", W, R, "overdue") == {"code": "ok", "status": "blocked"}
    refused = call(line, "reserve_credit", W, R, "o3", 1)
    assert (refused["code"], refused["reservation_id"]) == ("line_blocked", None)
    assert call(line, "can_reserve", W, R, 1)["code"] == "line_blocked"
    # A replay still succeeds on a blocked line, and everything but new holds works.
    assert call(line, "reserve_credit", W, R, "o1", 100)["replayed"] is True
    assert call(line, "release_reservation", W, R, "o1")["code"] == "ok"
    assert call(line, "convert_to_debit", W, R, "o2")["code"] == "ok"
    assert call(line, "record_payment", W, R, "p1", 10)["code"] == "ok"
    assert call(line, "reverse_debit", W, R, "o2", "rv1", 10, "returned")["code"] == "ok"
    assert call(line, "adjust_balance", W, R, "a1", 5, "fee")["code"] == "ok"
    assert call(line, "unblock_line", W, R, "paid up") == {"code": "ok", "status": "active"}
    assert call(line, "reserve_credit", W, R, "o3", 1)["code"] == "ok"
    kinds = [r["kind"] for r in line.execute("SELECT kind FROM credit.line_event ORDER BY id")]
    assert kinds == ["opened", "blocked", "unblocked"]


def test_block_twice_records_once_and_unknown_line(line):
    call(line, "block_line", W, R, "a")
    assert call(line, "block_line", W, R, "b") == {"code": "ok", "status": "blocked"}
    assert line.execute("SELECT count(*) FROM credit.line_event WHERE kind = 'blocked'").fetchone()["count"] == 1
    assert call(line, "block_line", W, "nobody", "x") == {"code": "line_not_found", "status": None}
    assert call(line, "unblock_line", W, "nobody", "x") == {"code": "line_not_found", "status": None}


# -- get_available, can_reserve -----------------------------------------------

def test_get_available(line):
    assert avail(line) == {"code": "ok", "credit_limit": D(100_000), "reserved": D(0), "outstanding": D(0),
                           "available": D(100_000), "status": "active", "currency": "INR",
                           "past_due": D(0), "oldest_unpaid_due_date": None, "limit_valid_until": None}
    assert avail(line, W, "nobody")["code"] == "line_not_found"


def test_can_reserve_answers_without_writing(line):
    call(line, "reserve_credit", W, R, "o1", 90_000)
    before = table_counts(line)
    assert call(line, "can_reserve", W, R, 10_000) == {
        "code": "ok", "can_reserve": True, "available": D(10_000), "shortfall": D(0)}
    assert call(line, "can_reserve", W, R, 12_500) == {
        "code": "insufficient_credit", "can_reserve": False, "available": D(10_000), "shortfall": D(2_500)}
    assert call(line, "can_reserve", W, "nobody", 1)["code"] == "line_not_found"
    assert table_counts(line) == before


# -- reserve_credit -----------------------------------------------------------

@pytest.mark.direct_only('reads the refusal log of two lines, which the proxy places on different partitions')
def test_reserve_exact_fit_then_refusal_logged(line):
    ok = call(line, "reserve_credit", W, R, "o1", D("100000.00"))
    assert (ok["code"], ok["status"], ok["available"], ok["shortfall"]) == ("ok", "active", D(0), D(0))
    no = call(line, "reserve_credit", W, R, "o2", D("0.01"))
    assert (no["code"], no["shortfall"], no["available"]) == ("insufficient_credit", D("0.01"), D(0))
    call(line, "reserve_credit", W, "nobody", "o3", 5)
    call(line, "block_line", W, R, "x")
    call(line, "reserve_credit", W, R, "o4", 5)
    log = line.execute("SELECT code, order_ref, amount, available, line_id IS NULL AS no_line "
                       "FROM credit.refusal ORDER BY id").fetchall()
    assert log == [
        {"code": "insufficient_credit", "order_ref": "o2", "amount": D("0.01"), "available": D(0), "no_line": False},
        {"code": "line_not_found", "order_ref": "o3", "amount": D(5), "available": None, "no_line": True},
        {"code": "line_blocked", "order_ref": "o4", "amount": D(5), "available": D(0), "no_line": False},
    ]


def test_reserve_replay_and_conflict(line):
    first = call(line, "reserve_credit", W, R, "o1", 500)
    again = call(line, "reserve_credit", W, R, "o1", D("500.00"))
    assert (again["code"], again["replayed"], again["reservation_id"]) == ("ok", True, first["reservation_id"])
    other = call(line, "reserve_credit", W, R, "o1", 501)
    assert (other["code"], other["replayed"], other["amount"]) == ("exists_with_different_amount", False, D(500))
    assert avail(line)["reserved"] == D(500)
    # A replay comes before the credit check: it succeeds even with nothing available.
    call(line, "set_credit_limit", W, R, 0, "freeze")
    assert call(line, "reserve_credit", W, R, "o1", 500)["code"] == "ok"


def test_reserve_replay_after_release_reports_current_state(line):
    first = call(line, "reserve_credit", W, R, "o1", 500)
    call(line, "release_reservation", W, R, "o1")
    again = call(line, "reserve_credit", W, R, "o1", 500)
    assert (again["code"], again["status"], again["reservation_id"]) == ("ok", "released", first["reservation_id"])
    assert avail(line)["reserved"] == 0


# -- release_reservation ------------------------------------------------------

def test_release_codes(line):
    call(line, "reserve_credit", W, R, "o1", 700)
    row = call(line, "release_reservation", W, R, "o1", "cancelled")
    assert row == {"code": "ok", "reservation_id": row["reservation_id"], "status": "released",
                   "released_amount": D(700), "available": D(100_000), "replayed": False}
    again = call(line, "release_reservation", W, R, "o1")
    assert (again["code"], again["replayed"], again["released_amount"]) == ("ok", True, D(700))
    reason = line.execute("SELECT release_reason FROM credit.reservation").fetchone()["release_reason"]
    assert reason == "cancelled"
    call(line, "reserve_credit", W, R, "o2", 10)
    call(line, "convert_to_debit", W, R, "o2")
    assert call(line, "release_reservation", W, R, "o2")["code"] == "reservation_converted"
    assert call(line, "release_reservation", W, R, "nope")["code"] == "reservation_not_found"
    assert call(line, "release_reservation", W, "nobody", "o1")["code"] == "line_not_found"


# -- convert_to_debit ---------------------------------------------------------

def test_convert_whole_hold_with_default_due_date(line):
    call(line, "reserve_credit", W, R, "o1", 1_000)
    row = call(line, "convert_to_debit", W, R, "o1")
    today = line.execute("SELECT current_date AS d").fetchone()["d"]
    assert (row["code"], row["status"], row["debited_amount"], row["released_amount"]) == \
        ("ok", "converted", D(1_000), D(0))
    assert row["due_date"] == today + dt.timedelta(days=30)
    entry = line.execute("SELECT entry_type, amount, due_date, reservation_id FROM credit.ledger_entry").fetchone()
    assert entry == {"entry_type": "DEBIT", "amount": D(1_000), "due_date": row["due_date"],
                     "reservation_id": row["reservation_id"]}
    assert (avail(line)["reserved"], avail(line)["outstanding"]) == (D(0), D(1_000))


def test_convert_partial_releases_the_rest(line):
    call(line, "reserve_credit", W, R, "o1", 1_000)
    row = call(line, "convert_to_debit", W, R, "o1", 600, dt.date(2031, 1, 31))
    assert (row["debited_amount"], row["released_amount"], row["due_date"]) == (D(600), D(400), dt.date(2031, 1, 31))
    assert (row["available"], avail(line)["reserved"], avail(line)["outstanding"]) == (D(99_400), D(0), D(600))


def test_convert_replays_compare_effective_amounts(line):
    call(line, "reserve_credit", W, R, "o1", 1_000)
    call(line, "reserve_credit", W, R, "o2", 1_000)
    whole = call(line, "convert_to_debit", W, R, "o1")
    for amount in (None, 1_000):  # NULL means the whole hold
        again = call(line, "convert_to_debit", W, R, "o1", amount)
        assert (again["code"], again["replayed"], again["ledger_entry_id"], again["due_date"]) == \
            ("ok", True, whole["ledger_entry_id"], whole["due_date"])
    assert call(line, "convert_to_debit", W, R, "o1", 999)["code"] == "exists_with_different_amount"
    call(line, "convert_to_debit", W, R, "o2", 400)
    assert call(line, "convert_to_debit", W, R, "o2", 400)["replayed"] is True
    assert call(line, "convert_to_debit", W, R, "o2")["code"] == "exists_with_different_amount"
    assert line.execute("SELECT count(*) FROM credit.ledger_entry").fetchone()["count"] == 2


def test_convert_refusals(line):
    call(line, "reserve_credit", W, R, "o1", 100)
    assert call(line, "convert_to_debit", W, R, "o1", D("100.01"))["code"] == "exceeds_reservation_amount"
    call(line, "release_reservation", W, R, "o1")
    assert call(line, "convert_to_debit", W, R, "o1")["code"] == "reservation_released"
    assert call(line, "convert_to_debit", W, R, "nope")["code"] == "reservation_not_found"
    assert call(line, "convert_to_debit", W, "nobody", "o1")["code"] == "line_not_found"
    assert line.execute("SELECT count(*) FROM credit.ledger_entry").fetchone()["count"] == 0


# -- expiry -------------------------------------------------------------------

def _expire_soon(conn, ref, amount, ms=50):
    row = call(conn, "reserve_credit", W, R, ref, amount, dt.timedelta(milliseconds=ms))
    assert row["code"] == "ok"
    time.sleep(ms / 1000 + 0.05)
    return row


def test_expired_hold_stops_counting_before_any_sweep(line):
    call(line, "reserve_credit", W, R, "keep", 100, dt.timedelta(hours=1))
    _expire_soon(line, "gone", 40_000)
    assert avail(line)["reserved"] == D(100)
    assert call(line, "can_reserve", W, R, 99_900)["code"] == "ok"
    status = line.execute("SELECT status FROM credit.reservation WHERE order_ref = 'gone'").fetchone()
    assert status["status"] == "active"  # not yet swept: readers just do not count it
    summary = line.execute("SELECT reserved, active_holds FROM credit.line_summary").fetchone()
    assert summary == {"reserved": D(100), "active_holds": 1}
    assert line.execute("SELECT holds_awaiting_sweep FROM credit.monitor_totals").fetchone()[
        "holds_awaiting_sweep"] == 1


def test_operation_on_the_line_sweeps_and_expired_refuses(line):
    _expire_soon(line, "gone", 40_000)
    assert call(line, "reserve_credit", W, R, "new", 100_000)["code"] == "ok"
    row = line.execute("SELECT status, expired_at IS NOT NULL AS stamped FROM credit.reservation "
                       "WHERE order_ref = 'gone'").fetchone()
    assert row == {"status": "expired", "stamped": True}
    assert call(line, "convert_to_debit", W, R, "gone")["code"] == "reservation_expired"
    assert call(line, "release_reservation", W, R, "gone")["code"] == "reservation_expired"
    assert (avail(line)["reserved"], avail(line)["outstanding"]) == (D(100_000), D(0))
    assert list(line.execute("SELECT * FROM credit.reconcile()")) == []


def test_expire_reservations_counts_and_bounds(line):
    # Long enough that no hold expires before the last call: a call on the line
    # would sweep it (a loaded machine, or the proxy's hop, made 20 ms too short).
    for i in range(5):
        call(line, "reserve_credit", W, R, f"e{i}", 10, dt.timedelta(milliseconds=500))
    call(line, "reserve_credit", W, R, "stay", 10, dt.timedelta(hours=1))
    time.sleep(0.6)
    assert line.execute("SELECT credit.expire_reservations(2) AS n").fetchone()["n"] == 2
    assert line.execute("SELECT credit.expire_reservations() AS n").fetchone()["n"] == 3
    assert line.execute("SELECT credit.expire_reservations() AS n").fetchone()["n"] == 0
    assert avail(line)["reserved"] == D(10)
    assert list(line.execute("SELECT * FROM credit.reconcile()")) == []


# -- payments, reversals, adjustments -------------------------------------------

def test_record_payment_and_overpayment(line):
    call(line, "reserve_credit", W, R, "o1", 1_000)
    call(line, "convert_to_debit", W, R, "o1")
    pay = call(line, "record_payment", W, R, "p1", 1_500)
    assert (pay["code"], pay["outstanding"], pay["available"], pay["replayed"]) == ("ok", D(-500), D(100_500), False)
    again = call(line, "record_payment", W, R, "p1", 1_500)
    assert (again["code"], again["replayed"], again["ledger_entry_id"]) == ("ok", True, pay["ledger_entry_id"])
    assert call(line, "record_payment", W, R, "p1", 1_400)["code"] == "exists_with_different_amount"
    assert call(line, "record_payment", W, "nobody", "p1", 1)["code"] == "line_not_found"
    assert avail(line)["outstanding"] == D(-500)


def test_reverse_debit_codes(line):
    call(line, "reserve_credit", W, R, "o1", 1_000)
    call(line, "convert_to_debit", W, R, "o1")
    first = call(line, "reverse_debit", W, R, "o1", "rv1", 600, "returned")
    assert (first["code"], first["outstanding"]) == ("ok", D(400))
    assert call(line, "reverse_debit", W, R, "o1", "rv1", 600, "returned")["replayed"] is True
    assert call(line, "reverse_debit", W, R, "o1", "rv1", 500, "x")["code"] == "exists_with_different_amount"
    assert call(line, "reverse_debit", W, R, "o1", "rv2", D("400.01"), "x")["code"] == "exceeds_debit_amount"
    assert call(line, "reverse_debit", W, R, "o1", "rv2", 400, "x")["code"] == "ok"
    assert call(line, "reverse_debit", W, R, "o9", "rv3", 1, "x")["code"] == "debit_not_found"
    assert call(line, "reverse_debit", W, "nobody", "o1", "rv3", 1, "x")["code"] == "line_not_found"
    assert avail(line)["outstanding"] == D(0)


def test_adjust_balance_signed(line):
    up = call(line, "adjust_balance", W, R, "a1", 250, "late fee")
    down = call(line, "adjust_balance", W, R, "a2", D("-50.50"), "goodwill")
    assert (up["outstanding"], down["outstanding"], down["available"]) == (D(250), D("199.50"), D("99800.50"))
    assert call(line, "adjust_balance", W, R, "a2", D("-50.50"), "goodwill")["replayed"] is True
    assert call(line, "adjust_balance", W, R, "a2", 50, "x")["code"] == "exists_with_different_amount"
    assert call(line, "adjust_balance", W, "nobody", "a3", 1, "x")["code"] == "line_not_found"


def test_keys_are_per_kind_and_per_line(line):
    call(line, "open_line", W, "r2", 100)
    call(line, "record_payment", W, R, "k", 10)
    assert call(line, "record_payment", W, "r2", "k", 20)["replayed"] is False  # another line
    assert call(line, "adjust_balance", W, R, "k", 30, "x")["replayed"] is False  # another kind of key


# -- statement, views -----------------------------------------------------------

def test_statement_running_balance(line):
    call(line, "reserve_credit", W, R, "o1", 1_000)
    call(line, "convert_to_debit", W, R, "o1")
    call(line, "record_payment", W, R, "p1", 300)
    call(line, "reverse_debit", W, R, "o1", "rv1", 100, "damaged")
    call(line, "adjust_balance", W, R, "a1", 5, "fee")
    today = line.execute("SELECT current_date AS d").fetchone()["d"]
    rows = line.execute("SELECT entry_type, ref, amount, balance FROM credit.statement(%s, %s, %s, %s)",
                        [W, R, today, today]).fetchall()
    assert [(r["entry_type"], r["amount"], r["balance"]) for r in rows] == [
        ("OPENING", 0, 0), ("DEBIT", D(1000), D(1000)), ("CREDIT", D(-300), D(700)),
        ("REVERSAL", D(-100), D(600)), ("ADJUSTMENT", D(5), D(605))]
    later = line.execute("SELECT entry_type, balance FROM credit.statement(%s, %s, %s, %s)",
                         [W, R, today + dt.timedelta(days=1), today + dt.timedelta(days=9)]).fetchall()
    assert later == [{"entry_type": "OPENING", "balance": D(605)}]


def test_statement_errors(line):
    with pytest.raises(Exception) as bad_range:
        line.execute("SELECT * FROM credit.statement(%s, %s, '2030-01-02', '2030-01-01')", [W, R])
    assert bad_range.value.sqlstate == "22023" and "from_date" in str(bad_range.value)
    with pytest.raises(Exception) as missing:
        line.execute("SELECT * FROM credit.statement(%s, 'nobody', '2030-01-01', '2030-01-02')", [W])
    assert missing.value.sqlstate == "P0002"


def test_line_summary_and_monitoring(line):
    call(line, "reserve_credit", W, R, "o1", 10_000)
    call(line, "reserve_credit", W, R, "o2", 20_000)
    call(line, "convert_to_debit", W, R, "o2", None, dt.date(2000, 1, 1))  # long overdue
    call(line, "reserve_credit", W, R, "o3", 5_000)
    call(line, "convert_to_debit", W, R, "o3")  # due in 30 days
    call(line, "reserve_credit", W, R, "big", 10**6)
    s = line.execute("SELECT * FROM credit.line_summary").fetchone()
    assert (s["reserved"], s["outstanding"], s["available"], s["utilization_pct"]) == \
        (D(10_000), D(25_000), D(65_000), D("35.00"))
    assert (s["active_holds"], s["overdue_amount"]) == (1, D(20_000))
    assert s["oldest_active_hold_age"] >= dt.timedelta(0)
    t = line.execute("SELECT * FROM credit.monitor_totals").fetchone()
    assert (t["lines"], t["total_reserved"], t["total_outstanding"]) == (1, D(10_000), D(25_000))
    refusals = line.execute("SELECT code, refusals FROM credit.monitor_refusals").fetchall()
    assert refusals == [{"code": "insufficient_credit", "refusals": 1}]


# -- reconcile ------------------------------------------------------------------

def _book(conn):
    call(conn, "reserve_credit", W, R, "o1", 1_000)
    call(conn, "convert_to_debit", W, R, "o1")
    call(conn, "reserve_credit", W, R, "o2", 500)


def _findings(conn):
    return {r["check_name"] for r in conn.execute("SELECT * FROM credit.reconcile()")}


def test_reconcile_healthy(line):
    _book(line)
    call(line, "set_credit_limit", W, R, 10, "cut")  # over the limit, explained by the decrease
    assert _findings(line) == set()


@pytest.mark.parametrize("check, corruption", [
    ("reserved_total", "UPDATE credit.line SET reserved = reserved + 1"),
    ("outstanding_total", "UPDATE credit.line SET outstanding = outstanding - 1"),
    ("over_limit", "UPDATE credit.line SET credit_limit = 1"),
    ("converted_hold_debit", "UPDATE credit.reservation SET converted_amount = 999, released_amount = 1 "
                             "WHERE order_ref = 'o1'"),
    ("debit_hold_link", "UPDATE credit.reservation SET status = 'released', released_at = now(), "
                        "released_amount = amount, debit_entry_id = NULL WHERE order_ref = 'o1'"),
    ("converted_hold_debit", "UPDATE credit.reservation SET debit_entry_id = -1 WHERE order_ref = 'o1'"),
    ("debit_hold_link", "UPDATE credit.reservation SET id = DEFAULT WHERE order_ref = 'o1'"),
    # The hold row has no constraints of its own (they cost every reservation): reconcile is the check.
    ("hold_amount", "UPDATE credit.reservation SET amount = 'NaN' WHERE order_ref = 'o2'"),
    ("hold_amount", "UPDATE credit.reservation SET amount = 'Infinity' WHERE order_ref = 'o2'"),
    ("hold_amount", "UPDATE credit.reservation SET amount = -5 WHERE order_ref = 'o2'"),
    ("hold_state", "UPDATE credit.reservation SET status = 'lost' WHERE order_ref = 'o2'"),
    ("hold_state", "UPDATE credit.reservation SET status = 'released' WHERE order_ref = 'o2'"),
    ("hold_state", "UPDATE credit.reservation SET released_amount = 2 WHERE order_ref = 'o1'"),
    ("hold_line", "UPDATE credit.reservation SET line_id = -1 WHERE order_ref = 'o2'"),
    ("reversal_exceeds_debit", "INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref, debit_id) "
                               "SELECT line_id, 'REVERSAL', 2000, 'forged', id FROM credit.ledger_entry"),
])
def test_reconcile_finds_each_corruption(line, check, corruption):
    _book(line)
    line.execute(corruption)
    assert check in _findings(line)
