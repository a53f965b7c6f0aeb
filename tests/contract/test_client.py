"""The Python client: Decimal and frozen results, typed errors, retries, pools, async."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import tempfile
import threading
import time
from decimal import Decimal as D

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import pgcredit as pc
from pgcredit import AsyncCreditClient, CreditClient, Retry

W, R = "w", "r"
FAST = Retry(attempts=3, base_delay=0.01, max_delay=0.05)


def test_every_method_and_decimal_frozen_results(client):
    opened = client.open_line(W, R, D("1000.00"))
    assert isinstance(opened, pc.OpenLineResult) and isinstance(opened.available, D)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.code = "x"
    assert client.set_credit_limit(W, R, 2000, "grow").credit_limit == D(2000)
    assert client.block_line(W, R, "check").status == "blocked"
    assert client.unblock_line(W, R, "fine").status == "active"
    assert client.can_reserve(W, R, D(500)).can_reserve is True
    held = client.reserve_credit(W, R, "o1", D("500.50"), dt.timedelta(hours=1))
    assert (held.amount, held.available) == (D("500.50"), D("1499.50"))
    client.reserve_credit(W, R, "o2", 100)
    assert client.release_reservation(W, R, "o2", "cancelled").released_amount == D(100)
    conv = client.convert_to_debit(W, R, "o1", D(500), dt.date(2030, 1, 1))
    assert (conv.debited_amount, conv.released_amount, conv.due_date) == (D(500), D("0.50"), dt.date(2030, 1, 1))
    assert client.record_payment(W, R, "p1", 100).outstanding == D(400)
    assert client.reverse_debit(W, R, "o1", "rv1", 50, "returned").outstanding == D(350)
    assert client.adjust_balance(W, R, "a1", D(-50), "discount").outstanding == D(300)
    assert client.get_available(W, R).available == D(1700)
    assert client.expire_reservations() == 0
    assert client.reconcile() == []
    lines = client.statement(W, R, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
    assert [x.entry_type for x in lines] == ["OPENING", "DEBIT", "CREDIT", "REVERSAL", "ADJUSTMENT"]
    assert lines[-1].balance == D(300) and isinstance(lines[0], pc.StatementLine)


def test_python_defaults_match_the_sql_defaults(client, conn):
    client.open_line(W, "by-python", 10)
    conn.execute("SELECT credit.open_line('w', 'by-sql', 10)")
    terms = conn.execute("SELECT DISTINCT currency, payment_terms_days FROM credit.line").fetchall()
    assert len(terms) == 1


@pytest.mark.parametrize("setup, call, exc, code", [
    ([], lambda c, **kw: c.get_available(W, "nobody", **kw), pc.LineNotFound, "line_not_found"),
    ([], lambda c, **kw: c.reserve_credit(W, "nobody", "o", 1, **kw), pc.LineNotFound, "line_not_found"),
    ([("block_line", W, R, "x")], lambda c, **kw: c.reserve_credit(W, R, "o", 1, **kw), pc.LineBlocked,
     "line_blocked"),
    ([], lambda c, **kw: c.release_reservation(W, R, "none", **kw), pc.ReservationNotFound, "reservation_not_found"),
    ([("reserve_credit", W, R, "o", 1), ("release_reservation", W, R, "o")],
     lambda c, **kw: c.convert_to_debit(W, R, "o", **kw), pc.ReservationReleased, "reservation_released"),
    ([("reserve_credit", W, R, "o", 1), ("convert_to_debit", W, R, "o")],
     lambda c, **kw: c.release_reservation(W, R, "o", **kw), pc.ReservationConverted, "reservation_converted"),
    ([("reserve_credit", W, R, "o", 1)], lambda c, **kw: c.convert_to_debit(W, R, "o", 2, **kw),
     pc.ExceedsReservationAmount, "exceeds_reservation_amount"),
    ([("reserve_credit", W, R, "o", 1)], lambda c, **kw: c.reserve_credit(W, R, "o", 2, **kw),
     pc.IdempotencyConflict, "exists_with_different_amount"),
    ([], lambda c, **kw: c.open_line(W, R, 5, **kw), pc.IdempotencyConflict, "exists_with_different_terms"),
    ([], lambda c, **kw: c.reverse_debit(W, R, "none", "rv", 1, "x", **kw), pc.DebitNotFound, "debit_not_found"),
    ([("reserve_credit", W, R, "o", 1), ("convert_to_debit", W, R, "o")],
     lambda c, **kw: c.reverse_debit(W, R, "o", "rv", 2, "x", **kw), pc.ExceedsDebitAmount, "exceeds_debit_amount"),
    ([("record_payment", W, R, "p", 1)], lambda c, **kw: c.record_payment(W, R, "p", 2, **kw),
     pc.IdempotencyConflict, "exists_with_different_amount"),
])
def test_codes_raise_typed_errors_unless_check_false(client, setup, call, exc, code):
    client.open_line(W, R, 100)
    for name, *args in setup:
        getattr(client, name)(*args)
    result = call(client, check=False)  # the row, not an exception
    assert result.code == code
    with pytest.raises(pc.CreditRefused) as err:
        call(client)
    assert type(err.value) is exc and isinstance(err.value, pc.CreditError)
    assert err.value.result == result


def test_insufficient_credit_carries_available_and_shortfall(client):
    client.open_line(W, R, 100)
    with pytest.raises(pc.InsufficientCredit) as err:
        client.reserve_credit(W, R, "o", D("130.25"))
    assert (err.value.available, err.value.shortfall) == (D(100), D("30.25"))
    result = client.reserve_credit(W, R, "o", D("130.25"), check=False)
    assert (result.code, result.shortfall) == ("insufficient_credit", D("30.25"))


def test_reservation_expired_error(client):
    client.open_line(W, R, 100)
    client.reserve_credit(W, R, "o", 1, dt.timedelta(milliseconds=20))
    time.sleep(0.1)
    with pytest.raises(pc.ReservationExpired):
        client.convert_to_debit(W, R, "o")


def test_invalid_input_is_a_value_error_with_the_server_message(client, conn):
    client.open_line(W, R, 100)
    with pytest.raises(pc.InvalidInput) as err:
        client.reserve_credit(W, R, "o", D("1.005"))
    assert isinstance(err.value, ValueError) and isinstance(err.value, pc.CreditError)
    assert not isinstance(err.value, psycopg.Error)
    assert "amount must have at most 2 decimal places" in str(err.value)
    assert err.value.sqlstate == "22023" and isinstance(err.value.__cause__, psycopg.Error)
    assert conn.execute("SELECT count(*) FROM credit.reservation").fetchone()["count"] == 0


def test_float_money_is_refused_before_sending(client):
    with pytest.raises(TypeError, match="float"):
        client.open_line(W, R, 100.0)


def _hold_line_lock(dsn, seconds):
    """Locks line (W, R) from another connection for `seconds`, in a thread."""
    locked = threading.Event()

    def hold():
        with psycopg.connect(dsn) as other:
            other.execute("SELECT * FROM credit.line WHERE wholesaler_id = %s FOR UPDATE", [W])
            locked.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    locked.wait()
    return t


@pytest.mark.direct_only("locks the line's row from a second connection to the database, which on the proxy holds no tables; the lock bound through the proxy is in test_proxy.py")
def test_lock_wait_is_bounded_and_retried_then_busy(cluster, dbname, client):
    client.open_line(W, R, 100)
    short = CreditClient(cluster.dsn(dbname, options="-c credit.lock_timeout=100ms"), retry=FAST)
    holder = _hold_line_lock(cluster.dsn(dbname), 1.5)
    started = time.monotonic()
    with pytest.raises(pc.CreditBusy) as err:
        short.reserve_credit(W, R, "o", 1)
    assert err.value.__cause__.sqlstate == "55P03"
    assert time.monotonic() - started >= 3 * 0.1  # three attempts, each waited out its bound
    holder.join()
    short.close()
    assert client.get_available(W, R).reserved == 0


@pytest.mark.direct_only("locks the line's row from a second connection to the database, which on the proxy holds no tables; the lock bound through the proxy is in test_proxy.py")
def test_retry_succeeds_once_the_lock_is_free(cluster, dbname, client):
    client.open_line(W, R, 100)
    patient = CreditClient(cluster.dsn(dbname, options="-c credit.lock_timeout=100ms"),
                           retry=Retry(attempts=20, base_delay=0.05, max_delay=0.1))
    holder = _hold_line_lock(cluster.dsn(dbname), 0.5)
    assert patient.reserve_credit(W, R, "o", 7).replayed is False
    holder.join()
    patient.close()
    assert client.get_available(W, R).reserved == D(7)


@pytest.mark.direct_only("locks the line's row from a second connection to the database, which on the proxy holds no tables; the lock bound through the proxy is in test_proxy.py")
def test_sql_lock_bound_default_and_session_setting_restored(dsn, conn):
    conn.execute("SELECT credit.open_line('w', 'r', 100)")
    holder = _hold_line_lock(dsn, 3)
    with psycopg.connect(dsn) as waiter:
        waiter.execute("SET lock_timeout = 0")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            waiter.execute("SELECT * FROM credit.reserve_credit('w', 'r', 'o', 1)")
        assert 1.9 <= time.monotonic() - started < 2.9  # the default bound is 2 s
    holder.join()
    with psycopg.connect(dsn) as c:
        c.execute("SET lock_timeout = '7s'")
        c.execute("SELECT * FROM credit.reserve_credit('w', 'r', 'o', 1)")
        assert c.execute("SHOW lock_timeout").fetchone()[0] == "7s"


@pytest.mark.direct_only("locks the line's row from a second connection to the database, which on the proxy holds no tables; the lock bound through the proxy is in test_proxy.py")
def test_lost_connection_is_retried_with_the_same_key(cluster, dbname, client, conn):
    """The backend is terminated while it is in the call (waiting for the
    line's lock); the client reconnects and calls again with the same key:
    the one hold is under that key, as a retry under a new one would not be."""
    client.open_line(W, R, 100)
    seen = []
    retrying = CreditClient(cluster.dsn(dbname), retry=Retry(
        attempts=5, base_delay=0.01, max_delay=0.05, on_retry=lambda name, attempt, e: seen.append(e.sqlstate)))
    retrying.get_available(W, R)
    pid = retrying._own.info.backend_pid

    def kill_while_it_waits():
        for _ in range(500):
            row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if row and row["wait_event_type"] == "Lock":
                conn.execute("SELECT pg_terminate_backend(%s)", [pid])
                return
            time.sleep(0.01)

    holder = _hold_line_lock(cluster.dsn(dbname), 0.5)
    killer = threading.Thread(target=kill_while_it_waits)
    killer.start()
    result = retrying.reserve_credit(W, R, "o", 5)
    killer.join()
    holder.join()
    assert seen == ["57P01"]  # terminated in the call, once
    assert (result.code, result.replayed) == ("ok", False) and retrying._own.info.backend_pid != pid
    assert [r["order_ref"] for r in conn.execute("SELECT order_ref FROM credit.reservation")] == ["o"]
    retrying.close()


@pytest.mark.direct_only("through the proxy each call commits on its partition by itself: it cannot join the caller's transaction (PARTITIONING.md)")
def test_inside_the_callers_transaction_the_call_joins_it_and_is_not_retried(cluster, dbname):
    with psycopg.connect(cluster.dsn(dbname, options="-c credit.lock_timeout=100ms")) as c:
        client = CreditClient(c, retry=FAST)
        client.open_line(W, R, 100)  # idle connection: the client commits a transaction of its own
        with c.transaction():
            client.reserve_credit(W, R, "o", 5)
            assert client.get_available(W, R).reserved == 5
            raise psycopg.Rollback()
        assert client.get_available(W, R).reserved == 0  # rolled back with the caller's transaction
        holder = _hold_line_lock(cluster.dsn(dbname), 1.0)
        with pytest.raises(pc.CreditDatabaseError) as err, c.transaction():
            client.reserve_credit(W, R, "o", 5)
        # Not CreditBusy: the caller's transaction is aborted, only the caller can retry it.
        assert err.value.sqlstate == "55P03"
        holder.join()


def _statements_sent(conn, action) -> list[str]:
    """The simple-protocol commands and prepared statements libpq sends during action()."""
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return [line for line in trace.read().splitlines() if "\tF\t" in line and ("Query" in line or "Parse" in line)]


@pytest.mark.parametrize("autocommit, begins", [(True, 0), (False, 1)])
def test_a_call_on_an_idle_connection_is_its_own_transaction(dsn, autocommit, begins):
    with psycopg.connect(dsn, autocommit=autocommit) as conn:
        client = CreditClient(conn)
        client.open_line(W, R, 100)
        sent = _statements_sent(conn, lambda: client.reserve_credit(W, R, "o", 5))
        assert sum("BEGIN" in line for line in sent) == begins, sent
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # committed either way
        assert client.get_available(W, R).reserved == 5


def test_pool(dsn):
    with ConnectionPool(dsn, min_size=1, max_size=4, open=True) as pool:
        client = CreditClient(pool)
        client.open_line(W, R, 100)
        assert client.reserve_credit(W, R, "o", 60).available == D(40)
        with pytest.raises(pc.InsufficientCredit):
            client.reserve_credit(W, R, "o2", 41)


def test_async_client_and_pool(dsn):
    async def main():
        async with AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False) as pool:
            client = AsyncCreditClient(pool)
            await client.open_line(W, R, 100)
            results = await asyncio.gather(*[client.reserve_credit(W, R, f"o{i}", 30, check=False)
                                             for i in range(5)])
            assert sorted(r.code for r in results) == ["insufficient_credit"] * 2 + ["ok"] * 3
            with pytest.raises(pc.InsufficientCredit):
                await client.reserve_credit(W, R, "x", 11)
            with pytest.raises(pc.InvalidInput):
                await client.reserve_credit(W, R, "x", D("NaN"))
        direct = AsyncCreditClient(dsn)
        assert (await direct.get_available(W, R)).reserved == D(90)
        assert await direct.reconcile() == []
        await direct.close()
        async with await psycopg.AsyncConnection.connect(dsn) as aconn:
            assert (await AsyncCreditClient(aconn).can_reserve(W, R, 11)).code == "insufficient_credit"

    asyncio.run(main())
