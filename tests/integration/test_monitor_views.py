"""The monitoring views the exporter reads (sql/functions/monitor_*.sql) and the
scheduled reconcile run: their numbers, what they leave out, and that their
cost does not grow with history."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import psycopg
import pytest

from support.db import call


def test_book_by_currency_and_status(conn):
    call(conn, "open_line", "w", "a", 1000)                    # INR, 95% used
    call(conn, "reserve_credit", "w", "a", "a1", 950)
    call(conn, "open_line", "w", "b", 500)                     # INR, debt 150
    call(conn, "reserve_credit", "w", "b", "b1", 200)
    call(conn, "convert_to_debit", "w", "b", "b1")
    call(conn, "record_payment", "w", "b", "p1", 50)
    call(conn, "open_line", "w", "c", 300, "USD")             # USD, blocked, debt 300 on 300
    call(conn, "reserve_credit", "w", "c", "c1", 300)
    call(conn, "convert_to_debit", "w", "c", "c1", None, "2000-01-01")  # past due
    call(conn, "block_line", "w", "c", "late")
    call(conn, "open_line", "w", "z", 0)                       # INR, limit 0, nothing used
    rows = conn.execute("SELECT * FROM credit.monitor_book ORDER BY currency, status").fetchall()
    assert rows == [
        {"currency": "INR", "status": "active", "lines": 3, "credit_limit": Decimal("1500"),
         "reserved": Decimal("950.00"), "outstanding": Decimal("150.00"), "past_due": Decimal("0.00"),
         "lines_over_90pct": 1, "max_utilization_pct": Decimal("95.00")},
        {"currency": "USD", "status": "blocked", "lines": 1, "credit_limit": Decimal("300"),
         "reserved": Decimal("0.00"), "outstanding": Decimal("300.00"), "past_due": Decimal("300.00"),
         "lines_over_90pct": 1,
         "max_utilization_pct": Decimal("100.00")},
    ]
    # A zero limit with any exposure counts as over 90% (it is over any limit).
    call(conn, "adjust_balance", "w", "z", "adj", 5, "fee")
    inr = conn.execute("SELECT lines_over_90pct FROM credit.monitor_book WHERE currency = 'INR'").fetchone()
    assert inr == {"lines_over_90pct": 2}


def test_book_drops_expired_holds_before_any_sweep(conn):
    call(conn, "open_line", "w", "r", 100)
    call(conn, "reserve_credit", "w", "r", "short", 60, "1 second")
    call(conn, "reserve_credit", "w", "r", "long", 30)
    assert conn.execute("SELECT reserved FROM credit.monitor_book").fetchone()["reserved"] == 90
    time.sleep(1.1)
    assert conn.execute("SELECT reserved FROM credit.monitor_book").fetchone()["reserved"] == 30
    assert conn.execute("SELECT * FROM credit.monitor_sweep").fetchone()["holds_awaiting_sweep"] == 1


def _backdate_refusals(conn, code: str, ages: list[str]) -> None:
    for age in ages:
        conn.execute("INSERT INTO credit.refusal (created_at, wholesaler_id, retailer_id, order_ref, amount, code)"
                     " VALUES (now() - %s::interval, 'w', 'old', 'o', 1, %s)", [age, code])


def test_events_wait_until_a_reader_or_the_prune_job_advances_the_horizon(conn):
    call(conn, "open_line", "w", "r", 100)
    call(conn, "reserve_credit", "w", "r", "o", 1)
    time.sleep(0.05)
    waiting = conn.execute("SELECT * FROM credit.monitor_events").fetchone()
    assert waiting["events_waiting"] == 2 and 0.05 <= waiting["oldest_waiting_seconds"] < 60
    conn.execute("SELECT count(*) FROM credit.events_after()")
    assert conn.execute("SELECT * FROM credit.monitor_events").fetchone() == \
        {"events_waiting": 0, "oldest_waiting_seconds": 0}
    call(conn, "record_payment", "w", "r", "p", 1)
    conn.execute("SELECT credit.prune_events(interval '30 days')")  # the job advances it too
    assert conn.execute("SELECT events_waiting FROM credit.monitor_events").fetchone()["events_waiting"] == 0


def test_refusal_windows_count_by_code_and_window(conn):
    call(conn, "open_line", "w", "r", 100)
    call(conn, "reserve_credit", "w", "r", "big1", 500)
    call(conn, "reserve_credit", "w", "r", "big2", 500)
    call(conn, "reserve_credit", "w", "nobody", "x", 5)
    _backdate_refusals(conn, "insufficient_credit", ["10 minutes", "59 minutes", "61 minutes", "3 days"])
    _backdate_refusals(conn, "line_blocked", ["20 minutes"])
    rows = {r["code"]: (r["last_5m"], r["last_1h"])
            for r in conn.execute("SELECT * FROM credit.monitor_refusal_windows")}
    assert rows == {"insufficient_credit": (2, 4), "line_not_found": (1, 1), "line_blocked": (0, 1),
                    "overdue": (0, 0)}
    # A code outside the known list still shows up, by itself.
    _backdate_refusals(conn, "some_new_code", ["1 minute"])
    rows = {r["code"]: (r["last_5m"], r["last_1h"])
            for r in conn.execute("SELECT * FROM credit.monitor_refusal_windows")}
    assert rows["some_new_code"] == (1, 1)


def _plan(conn, sql: str) -> str:
    return "\n".join(r["QUERY PLAN"] for r in conn.execute("EXPLAIN " + sql))


def test_scrape_costs_do_not_grow_with_history(conn):
    """With a long history (old refusals, ended holds), the windowed and sweep
    views read only their indexes' recent or active part, and the book reads
    no hold or ledger table at all."""
    call(conn, "open_line", "w", "r", 10 ** 9)
    conn.execute("""INSERT INTO credit.refusal (created_at, wholesaler_id, retailer_id, order_ref, amount, code)
                    SELECT now() - interval '2 hours' - g * interval '1 second', 'w', 'r', 'o' || g, 1,
                           'insufficient_credit'
                      FROM generate_series(1, 20000) g""")
    line = conn.execute("SELECT id FROM credit.line").fetchone()["id"]
    conn.execute("""INSERT INTO credit.reservation (line_id, order_ref, amount, status, released_at, released_amount)
                    SELECT %s, 'old' || g, 1, 'released', now(), 1 FROM generate_series(1, 20000) g""", [line])
    conn.execute("ANALYZE credit.refusal")
    conn.execute("ANALYZE credit.reservation")
    refusals = _plan(conn, "SELECT * FROM credit.monitor_refusal_windows")
    assert "refusal_created_idx" in refusals and "Seq Scan" not in refusals, refusals
    sweep = _plan(conn, "SELECT * FROM credit.monitor_sweep")
    assert "reservation_list_idx" in sweep and "Seq Scan on reservation" not in sweep, sweep
    book = _plan(conn, "SELECT * FROM credit.monitor_book")
    assert "reservation" not in book and "ledger_entry" not in book and "refusal" not in book, book
    reconcile = _plan(conn, "SELECT * FROM credit.monitor_reconcile")
    assert "reconcile_run_pkey" in reconcile and "Sort" not in reconcile, reconcile


def _wait_for_lock(cluster, dbname, order_ref: str, errors: list) -> None:
    with psycopg.connect(cluster.dsn(dbname), autocommit=True) as c:
        c.execute("SET credit.lock_timeout = '30s'")
        try:
            c.execute("SELECT * FROM credit.reserve_credit('w', 'r', %s, 1)", [order_ref])
        except psycopg.Error as exc:  # reported by the test, not lost in a thread
            errors.append(exc)


def _lock_unrelated(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT * FROM public.unrelated FOR UPDATE")


def _lock_waits(conn) -> dict:
    return conn.execute("SELECT * FROM credit.monitor_lock_waits").fetchone()


def test_lock_waits_count_line_row_waiters_only(cluster, dbname, conn):
    """A line locked by an open transaction and two calls queued behind it: the
    first waits on the holder's transaction id (holding the row's tuple lock),
    the second on that tuple lock. Both count; a wait for a row of another
    table does not."""
    call(conn, "open_line", "w", "r", 100)
    conn.execute("CREATE TABLE public.unrelated (id int PRIMARY KEY)")
    conn.execute("INSERT INTO public.unrelated VALUES (1)")
    assert _lock_waits(conn) == {"waiters": 0, "longest_wait_seconds": 0}

    holder = psycopg.connect(cluster.dsn(dbname))
    other = psycopg.connect(cluster.dsn(dbname))
    errors: list = []
    threads = [threading.Thread(target=_wait_for_lock, args=(cluster, dbname, f"o{i}", errors)) for i in (1, 2)]
    try:
        holder.execute("SELECT * FROM credit.reserve_credit('w', 'r', 'first', 1)")  # line locked until commit
        other.execute("SELECT * FROM public.unrelated FOR UPDATE")
        unrelated = threading.Thread(target=_lock_unrelated, args=(cluster.dsn(dbname),))
        unrelated.start()
        for t in threads:
            t.start()
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while _lock_waits(conn)["waiters"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        waits = _lock_waits(conn)
        assert waits["waiters"] == 2
        assert Decimal("0.4") < waits["longest_wait_seconds"] < 10
        # What a looser query would say: every backend waiting on a lock, the unrelated one too.
        assert conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND datname = current_database()").fetchone()["n"] == 3
        # The tuple lock alone would miss the first waiter.
        assert conn.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'tuple' AND NOT granted "
                            "AND relation = 'credit.line'::regclass").fetchone()["n"] == 1
    finally:
        holder.commit()
        other.commit()
        for t in threads:
            t.join()
        unrelated.join()
        holder.close()
        other.close()
    assert errors == []
    assert _lock_waits(conn) == {"waiters": 0, "longest_wait_seconds": 0}


def test_record_reconcile_keeps_findings_by_check(conn):
    call(conn, "open_line", "w", "r", 100)
    call(conn, "reserve_credit", "w", "r", "held", 40)
    assert conn.execute("SELECT * FROM credit.monitor_reconcile").fetchall() == []
    assert conn.execute("SELECT credit.record_reconcile()").fetchone()["record_reconcile"] == 0
    first = conn.execute("SELECT * FROM credit.monitor_reconcile").fetchone()
    assert first["findings"] == 0 and first["findings_by_check"] == {}
    created = conn.execute("SELECT created_at FROM credit.reservation").fetchone()["created_at"]
    assert first["oldest_active_hold_at"] == created
    assert first["started_at"] <= first["finished_at"]

    conn.execute("UPDATE credit.line SET reserved = reserved + 1, outstanding = outstanding + 2")  # corruption
    assert conn.execute("SELECT credit.record_reconcile()").fetchone()["record_reconcile"] == 3
    last = conn.execute("SELECT * FROM credit.monitor_reconcile").fetchone()
    assert last["run_id"] > first["run_id"]
    # outstanding no longer matches the ledger, nor the open items less unapplied credit
    assert last["findings_by_check"] == {"reserved_total": 1, "outstanding_total": 1, "allocation_identity": 1}
    assert last["findings"] == 3


def test_record_reconcile_prunes_old_runs_and_checks_keep(conn):
    for _ in range(3):
        conn.execute("SELECT credit.record_reconcile()")
    conn.execute("UPDATE credit.reconcile_run SET finished_at = finished_at - interval '8 days', "
                 "started_at = started_at - interval '8 days' WHERE id < (SELECT max(id) FROM credit.reconcile_run)")
    conn.execute("SELECT credit.record_reconcile()")
    assert conn.execute("SELECT count(*) AS n FROM credit.reconcile_run").fetchone()["n"] == 2
    conn.execute("SELECT credit.record_reconcile('1 microsecond')")  # the newest run always stays
    assert conn.execute("SELECT count(*) AS n FROM credit.reconcile_run").fetchone()["n"] >= 1
    for bad in ("0", "-1 day"):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="keep must be a positive finite interval"):
            conn.execute("SELECT credit.record_reconcile(%s::interval)", [bad])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="got NULL"):
        conn.execute("SELECT credit.record_reconcile(NULL)")
