"""No double spend under concurrency, and proof that the check can fail."""

from __future__ import annotations

import random
import threading
from decimal import Decimal as D

import psycopg
import pytest

from pgcredit.demo import race
from reliability import unlock_reserve_credit

W = "w"
LIMIT = D(100_000)
RACERS = 32


def race_acked(dsn: str, retailer: str, amounts: list[D]) -> dict[str, D]:
    """The refs the database acknowledged, with their amounts."""
    orders = [(f"o{i}", a) for i, a in enumerate(amounts)]
    codes = race(dsn, W, retailer, orders)
    return {ref: amount for (ref, amount), code in zip(orders, codes) if code == "ok"}


def violations(conn, retailer: str, acked: dict[str, D]) -> list[str]:
    found = []
    line = conn.execute("SELECT id, reserved, credit_limit FROM credit.line WHERE retailer_id = %s",
                        [retailer]).fetchone()
    if line["reserved"] > line["credit_limit"]:
        found.append(f"overspent: reserved {line['reserved']} > limit {line['credit_limit']}")
    if line["reserved"] != sum(acked.values(), D(0)):
        found.append(f"reserved {line['reserved']} != acknowledged {sum(acked.values(), D(0))}")
    holds = {r["order_ref"]: r["amount"] for r in conn.execute(
        "SELECT order_ref, amount FROM credit.reservation WHERE line_id = %s AND status = 'active'",
        [line["id"]])}
    if holds != acked:
        found.append("active holds differ from the acknowledged reservations")
    found += [f"reconcile: {r['check_name']}" for r in conn.execute("SELECT * FROM credit.reconcile()")]
    return found


def run_rounds(dsn, conn, rounds: int) -> list[str]:
    rng = random.Random(7)
    found = []
    for n in range(rounds):
        retailer = f"r{n}"
        conn.execute("SELECT credit.open_line(%s, %s, %s)", [W, retailer, LIMIT])
        # Demand of about twice the limit: roughly half must be refused.
        amounts = [D(rng.randrange(2_000, 10_500)) for _ in range(RACERS)]
        found += violations(conn, retailer, race_acked(dsn, retailer, amounts))
    return found


def test_no_double_spend_in_a_32_way_race(dsn, conn):
    assert run_rounds(dsn, conn, 5) == []


def test_the_race_catches_an_unlocked_reserve_credit(dsn, conn):
    """Self-check: without the row lock (and with the gap between check and
    write widened, as a slow machine would) the same race must overspend."""
    unlock_reserve_credit(conn)
    found = run_rounds(dsn, conn, 2)
    assert any(v.startswith("overspent") for v in found), found
    assert any(v == "reconcile: over_limit" for v in found), found


def test_interleaved_second_reservation_waits_then_sees_the_first(dsn, conn):
    conn.execute("SELECT credit.open_line(%s, 'r', 100000)", [W])
    with psycopg.connect(dsn) as c1, psycopg.connect(dsn, autocommit=True) as c2:
        assert c1.execute("SELECT code FROM credit.reserve_credit('w', 'r', 'big', 75000)").fetchone()[0] == "ok"
        result = {}
        t = threading.Thread(target=lambda: result.update(
            code=c2.execute("SELECT code FROM credit.reserve_credit('w', 'r', 'small', 40000)").fetchone()[0]))
        t.start()
        for _ in range(200):  # c2 must be waiting on c1's row lock
            row = conn.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                               [c2.info.backend_pid]).fetchone()
            if row["wait_event"] == "transactionid":
                break
            threading.Event().wait(0.01)
        else:
            pytest.fail("the second reservation did not wait for the first")
        assert "code" not in result
        c1.commit()
        t.join()
    assert result["code"] == "insufficient_credit"
    assert conn.execute("SELECT reserved FROM credit.line").fetchone()["reserved"] == D(75_000)
