"""No double spend under concurrency, and proof that the check can fail."""

from __future__ import annotations

import random
from decimal import Decimal as D

from pgcredit.tools.demo import race
from support.reliability import unlock_reserve_credit

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
