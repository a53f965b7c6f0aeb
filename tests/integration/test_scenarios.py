"""SPEC's four scenarios, exactly."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal as D

import psycopg
import pytest

from pgcredit import CreditRefused
from pgcredit.tools.demo import race
from support.mutation import install_variant

W = "wholesaler"


def totals(client, r):
    a = client.get_available(W, r)
    return a.reserved, a.outstanding, a.available


def test_scenario_1_reserve_convert_release(client, conn):
    client.open_line(W, "s1", 100_000)
    assert client.reserve_credit(W, "s1", "A", 50_000).available == D(50_000)
    assert client.reserve_credit(W, "s1", "B", 50_000).available == D(0)
    conv = client.convert_to_debit(W, "s1", "A")
    assert totals(client, "s1") == (D(50_000), D(50_000), D(0))
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    assert conv.due_date == today + dt.timedelta(days=30)
    client.release_reservation(W, "s1", "B")
    assert totals(client, "s1") == (D(0), D(50_000), D(50_000))


def test_scenario_2_shortfall(client):
    client.open_line(W, "s2", 100_000)
    client.reserve_credit(W, "s2", "D", 25_000)
    client.convert_to_debit(W, "s2", "D")
    client.reserve_credit(W, "s2", "H", 60_000)
    assert totals(client, "s2") == (D(60_000), D(25_000), D(15_000))
    refused = client.reserve_credit(W, "s2", "X", 20_000, check=False)
    assert (refused.code, refused.shortfall) == ("insufficient_credit", D(5_000))


CONVERT = "SELECT * FROM credit.convert_to_debit('wholesaler', 's3', 'K')"


def _wait_for(conn, pid, wait_event):
    for _ in range(500):
        row = conn.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
        if row and row["wait_event"] == wait_event:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on {wait_event}")


def _victim(dsn, state):
    """Runs the conversion and commits, unless its backend is killed first."""
    try:
        with psycopg.connect(dsn) as v:
            state["pid"] = v.info.backend_pid
            state["ready"].set()
            v.execute(CONVERT)
            v.commit()
            state["committed"] = True
    except psycopg.OperationalError:
        state["killed"] = True


def _kill_while_waiting(dsn, conn, state, wait_event):
    t = threading.Thread(target=_victim, args=(dsn, state))
    t.start()
    state["ready"].wait()
    _wait_for(conn, state["pid"], wait_event)
    conn.execute("SELECT pg_terminate_backend(%s)", [state["pid"]])
    t.join()


@pytest.mark.parametrize("point", ["waiting_for_the_line_lock", "after_the_debit_insert",
                                   "before_commit", "after_commit_ack_lost"])
def test_scenario_3_interrupted_conversion(dsn, conn, client, point):
    interrupted_conversion(dsn, conn, client, point)


def test_scenario_3_catches_a_conversion_that_does_not_replay(dsn, conn, client):
    """Self-check: a convert_to_debit that no longer recognises its own
    conversion answers the retry after a lost acknowledgement with
    a refusal, and the caller cannot tell it succeeded."""
    install_variant(conn, "convert_to_debit.sql", ("ELSIF h.status = 'converted' AND shipment_ref IS NULL THEN",
                                                   "ELSIF h.status = 'converted' AND false THEN"))
    with pytest.raises(CreditRefused):
        interrupted_conversion(dsn, conn, client, "after_commit_ack_lost")


def interrupted_conversion(dsn, conn, client, point):
    client.open_line(W, "s3", 100_000)
    client.reserve_credit(W, "s3", "K", 30_000)
    state = {"ready": threading.Event()}
    kill = lambda pid: conn.execute("SELECT pg_terminate_backend(%s)", [pid])  # noqa: E731

    if point == "waiting_for_the_line_lock":
        with psycopg.connect(dsn) as holder:
            holder.execute("SELECT 1 FROM credit.line WHERE retailer_id = 's3' FOR UPDATE")
            _kill_while_waiting(dsn, conn, state, "transactionid")
    elif point == "after_the_debit_insert":
        # Test-only trigger: the conversion stalls after writing its DEBIT.
        conn.execute("CREATE FUNCTION public.stall() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$BEGIN PERFORM pg_sleep(30); RETURN NULL; END$$")
        conn.execute("CREATE TRIGGER stall AFTER INSERT ON credit.ledger_entry "
                      "FOR EACH ROW EXECUTE FUNCTION public.stall()")
        _kill_while_waiting(dsn, conn, state, "PgSleep")
        conn.execute("DROP TRIGGER stall ON credit.ledger_entry")
    elif point == "before_commit":
        v = psycopg.connect(dsn)
        assert v.execute(CONVERT).fetchone()[0] == "ok"
        kill(v.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            v.commit()
        v.close()
        state["killed"] = True
    else:
        with psycopg.connect(dsn) as v:
            v.execute(CONVERT)
            v.commit()
            kill(v.info.backend_pid)  # the caller never learns the outcome
        state["committed"] = True

    debits = "SELECT count(*) AS n FROM credit.ledger_entry WHERE entry_type = 'DEBIT'"
    if state.get("committed"):
        assert conn.execute(debits).fetchone()["n"] == 1
        assert totals(client, "s3") == (D(0), D(30_000), D(70_000))
    else:
        assert state.get("killed")
        # Nothing of the conversion survived.
        assert conn.execute(debits).fetchone()["n"] == 0
        assert totals(client, "s3") == (D(30_000), D(0), D(70_000))
        assert conn.execute("SELECT status FROM credit.reservation").fetchone()["status"] == "active"

    retried = client.convert_to_debit(W, "s3", "K")
    assert (retried.code, retried.replayed) == ("ok", bool(state.get("committed")))
    assert client.convert_to_debit(W, "s3", "K").replayed is True
    assert conn.execute(debits).fetchone()["n"] == 1
    assert totals(client, "s3") == (D(0), D(30_000), D(70_000))
    assert client.reconcile() == []


def test_scenario_4_two_concurrent_reservations(dsn, client):
    for round_ in range(10):  # a race is a sample: take several
        r = f"s4-{round_}"
        client.open_line(W, r, 100_000)
        big, small = race(dsn, W, r, [("big", D(75_000)), ("small", D(40_000))])
        assert sorted([big, small]) == ["insufficient_credit", "ok"]
        winner = D(75_000) if big == "ok" else D(40_000)
        assert client.get_available(W, r).reserved == winner
