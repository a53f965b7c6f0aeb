"""Two connections, interleaved, for every function that takes the line lock:
c1 begins and acts; c2's call waits on the lock; c1 commits; c2 proceeds and
sees c1's effect. And a wait past the bound raises 55P03, which the client retries."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal as D

import psycopg
import pytest

import pgcredit as pc
from pgcredit import CreditClient, Retry
from support.mutation import install_variant
from support.reliability import unlock_reserve_credit

W, R = "w", "r"

# function: (setup, what c1 runs in its transaction, c2's call, what c2 must see, c2's call of the same function)
CASES = {
    "open_line": (
        [], "open_line('w', 'r', 100)",
        lambda c: c.open_line(W, R, 100), lambda res: res.replayed,
        lambda c: c.open_line(W, R, 100)),
    "set_credit_limit": (
        [("open_line", W, R, 100)], "set_credit_limit('w', 'r', 50, 'cut')",
        lambda c: c.reserve_credit(W, R, "x", 60, check=False),
        lambda res: (res.code, res.available) == ("insufficient_credit", 50),
        lambda c: c.set_credit_limit(W, R, 50, "again")),
    "block_line": (
        [("open_line", W, R, 100)], "block_line('w', 'r', 'overdue')",
        lambda c: c.reserve_credit(W, R, "x", 1, check=False), lambda res: res.code == "line_blocked",
        lambda c: c.block_line(W, R, "again")),
    "unblock_line": (
        [("open_line", W, R, 100), ("block_line", W, R, "x")], "unblock_line('w', 'r', 'paid')",
        lambda c: c.reserve_credit(W, R, "x", 1, check=False), lambda res: res.code == "ok",
        lambda c: c.unblock_line(W, R, "again")),
    "reserve_credit": (
        [("open_line", W, R, 100)], "reserve_credit('w', 'r', 'big', 75)",
        lambda c: c.reserve_credit(W, R, "small", 40, check=False),
        lambda res: (res.code, res.available) == ("insufficient_credit", 25),
        lambda c: c.reserve_credit(W, R, "big", 75)),
    "release_reservation": (
        [("open_line", W, R, 100), ("reserve_credit", W, R, "o", 100)], "release_reservation('w', 'r', 'o')",
        lambda c: c.reserve_credit(W, R, "x", 100, check=False), lambda res: res.code == "ok",
        lambda c: c.release_reservation(W, R, "o")),
    "convert_to_debit": (
        [("open_line", W, R, 100), ("reserve_credit", W, R, "o", 100)], "convert_to_debit('w', 'r', 'o', 60)",
        lambda c: c.reserve_credit(W, R, "x", 40, check=False),
        lambda res: (res.code, res.available) == ("ok", 0),
        lambda c: c.convert_to_debit(W, R, "o", 60)),
    "record_payment": (
        [("open_line", W, R, 100), ("reserve_credit", W, R, "o", 100), ("convert_to_debit", W, R, "o")],
        "record_payment('w', 'r', 'p', 100)",
        lambda c: c.reserve_credit(W, R, "x", 100, check=False), lambda res: res.code == "ok",
        lambda c: c.record_payment(W, R, "p", 100)),
    "reverse_debit": (
        [("open_line", W, R, 100), ("reserve_credit", W, R, "o", 100), ("convert_to_debit", W, R, "o")],
        "reverse_debit('w', 'r', 'o', 'v', 100, 'returned')",
        lambda c: c.reserve_credit(W, R, "x", 100, check=False), lambda res: res.code == "ok",
        lambda c: c.reverse_debit(W, R, "o", "v", 100, "returned")),
    "adjust_balance": (
        [("open_line", W, R, 100)], "adjust_balance('w', 'r', 'a', 100, 'fee')",
        lambda c: c.reserve_credit(W, R, "x", 1, check=False), lambda res: res.code == "insufficient_credit",
        lambda c: c.adjust_balance(W, R, "a", 100, "fee")),
}


def _setup(client, steps):
    for name, *args in steps:
        getattr(client, name)(*args)


def _waits_on_a_lock(conn, pid) -> bool:
    for _ in range(300):
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
        if row["wait_event_type"] == "Lock":
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("fn", CASES)
def test_second_call_waits_then_sees_the_first(dsn, conn, client, fn):
    waits_then_sees(dsn, conn, client, fn)


def waits_then_sees(dsn, conn, client, fn):
    setup, c1_sql, c2_call, c2_sees, _ = CASES[fn]
    _setup(client, setup)
    with psycopg.connect(dsn) as c1, psycopg.connect(dsn, autocommit=True) as c2_conn:
        assert c1.execute(f"SELECT code FROM credit.{c1_sql}").fetchone()[0] == "ok"
        result = {}
        t = threading.Thread(target=lambda: result.update(res=c2_call(CreditClient(c2_conn))))
        t.start()
        assert _waits_on_a_lock(conn, c2_conn.info.backend_pid), "c2 did not wait for c1"
        assert not result
        c1.commit()
        t.join()
    assert c2_sees(result["res"]), result["res"]
    assert client.reconcile() == []


@pytest.mark.parametrize("fn", CASES)
def test_a_wait_past_the_bound_raises_55P03_and_the_client_retries(cluster, dbname, client, fn):
    bounded_and_retried(cluster, dbname, client, fn)


def bounded_and_retried(cluster, dbname, client, fn):
    setup, c1_sql, _, _, again = CASES[fn]
    _setup(client, setup)
    seen = []
    patient = CreditClient(cluster.dsn(dbname, options="-c credit.lock_timeout=50ms"),
                           retry=Retry(attempts=40, base_delay=0.01, max_delay=0.05,
                                       on_retry=lambda name, attempt, exc: seen.append(exc.sqlstate)))
    with psycopg.connect(cluster.dsn(dbname)) as c1:
        c1.execute(f"SELECT code FROM credit.{c1_sql}")
        t = threading.Timer(0.5, c1.commit)  # holds the lock well past the 50 ms bound
        t.start()
        res = again(patient)
        t.join()
    patient.close()
    assert res.code == "ok"
    assert "55P03" in seen


def test_the_checks_catch_an_unlocked_reserve_credit(dsn, conn, client):
    """Self-check: with reserve_credit reading the line without its lock (the
    write still waits, for the row), c2 waits but does not see c1's hold:
    it books 40 on top of 75 on a 100 line."""
    unlock_reserve_credit(conn)
    with pytest.raises(AssertionError, match="ReserveResult\\(code='ok'"):
        waits_then_sees(dsn, conn, client, "reserve_credit")


def test_the_checks_catch_an_unbounded_open_line(cluster, dbname, conn, client):
    """Self-check, the gap this test found: open_line without the
    credit.lock_timeout bound waits for another transaction's open_line past
    it (up to its own 2 s): no 55P03."""
    install_variant(conn, "open_line.sql", ("        PERFORM credit._apply_lock_timeout();\n    END IF;\n    INSERT",
                                            "        NULL;\n    END IF;\n    INSERT"))
    with pytest.raises(AssertionError, match="55P03"):
        bounded_and_retried(cluster, dbname, client, "open_line")


def test_the_one_deadlock_is_broken_and_retried(dsn, conn, client):
    """reserve_credit writes its hold before it waits for the line. c1 holds the
    line from an earlier call and then reserves the order_ref c2 is reserving
    at that moment: c2 waits for the line while holding that hold, c1 waits for
    the hold. PostgreSQL fails the waiter that finds the cycle (c2, which has
    waited longest) with 40P01; the client retries c2 with the same key, which
    replays c1's hold once c1 commits. c1's transaction goes on unharmed."""
    client.open_line(W, R, 100)
    seen = []
    with psycopg.connect(dsn) as c1, psycopg.connect(dsn, autocommit=True) as c2_conn:
        c1.execute("SELECT code FROM credit.reserve_credit('w', 'r', 'first', 10)")
        c2 = CreditClient(c2_conn, retry=Retry(attempts=5, base_delay=0.3, max_delay=0.3,
                                               on_retry=lambda name, attempt, exc: seen.append(exc.sqlstate)))
        result = {}
        t = threading.Thread(target=lambda: result.update(res=c2.reserve_credit(W, R, "shared", 20)))
        t.start()
        assert _waits_on_a_lock(conn, c2_conn.info.backend_pid)
        assert c1.execute("SELECT code FROM credit.reserve_credit('w', 'r', 'shared', 20)").fetchone()[0] == "ok"
        c1.commit()
        t.join()
    assert seen == ["40P01"]
    assert (result["res"].code, result["res"].replayed) == ("ok", True)
    assert client.get_available(W, R).reserved == 30
    assert client.reconcile() == []


@pytest.mark.parametrize("fn", [*CASES, "expire_reservations"])
def test_the_bound_ends_with_the_call(dsn, client, fn):
    """credit.lock_timeout is in force inside a call only: the caller's own
    lock_timeout is back as soon as the function returns, mid-transaction too."""
    bound_ends_with_the_call(dsn, client, fn)


def test_the_check_catches_a_bound_that_outlives_the_call(dsn, conn, client):
    """Self-check: _apply_lock_timeout setting lock_timeout for the session
    (an ordinary SET outlives a function's SET clause)."""
    install_variant(conn, "_apply_lock_timeout.sql", ("current_setting('credit.lock_timeout'), true)",
                                                      "current_setting('credit.lock_timeout'), false)"))
    with pytest.raises(AssertionError, match="'50ms' == '7s'"):
        bound_ends_with_the_call(dsn, client, "reserve_credit")


def bound_ends_with_the_call(dsn, client, fn):
    setup, c1_sql, *_ = CASES.get(fn, ([], "expire_reservations()"))
    _setup(client, setup)
    with psycopg.connect(dsn) as c:
        c.execute("SET credit.lock_timeout = '50ms'")
        c.execute("SET lock_timeout = '7s'")
        c.execute(f"SELECT * FROM credit.{c1_sql}")
        assert c.execute("SHOW lock_timeout").fetchone()[0] == "7s"


def test_expire_reservations_skips_a_locked_line_and_waits_for_nothing(dsn, conn, client):
    skips_a_locked_line(dsn, client)


def test_the_check_catches_an_expire_reservations_that_waits(cluster, dbname, conn):
    """Self-check: without SKIP LOCKED the sweep waits for the locked line
    (up to its 2 s bound, then 55P03; the client is told not to retry)."""
    install_variant(conn, "expire_reservations.sql", ("FOR NO KEY UPDATE SKIP LOCKED", "FOR NO KEY UPDATE"))
    bounded = CreditClient(cluster.dsn(dbname), retry=Retry(attempts=1))
    with pytest.raises((AssertionError, pc.CreditBusy)):
        skips_a_locked_line(cluster.dsn(dbname), bounded)
    bounded.close()


def skips_a_locked_line(dsn, client):
    client.open_line(W, R, 100)
    client.reserve_credit(W, R, "e", 10, dt.timedelta(milliseconds=10))
    time.sleep(0.05)
    with psycopg.connect(dsn) as c1:
        c1.execute("SELECT 1 FROM credit.line WHERE wholesaler_id = 'w' FOR UPDATE")
        started = time.monotonic()
        assert client.expire_reservations() == 0
        assert time.monotonic() - started < 0.5
    assert client.expire_reservations() == 1
    assert client.get_available(W, R).reserved == D(0)
