"""No double spend under concurrency, and proof that the check can fail."""

from __future__ import annotations

import collections
import random
from decimal import Decimal as D

import pytest

from pgcredit import InvalidInput
from pgcredit.tools.demo import RaceFailed, race
from support.reliability import unlock_reserve_credit

W = "w"
LIMIT = D(100_000)
RACERS = 32


def race_acked(dsn: str, retailer: str, amounts: list[D]) -> tuple[dict[str, D], collections.Counter]:
    """The refs the database acknowledged, with their amounts, and every code answered."""
    orders = [(f"o{i}", a) for i, a in enumerate(amounts)]
    codes = race(dsn, W, retailer, orders)
    return ({ref: amount for (ref, amount), code in zip(orders, codes) if code == "ok"},
            collections.Counter(codes))


def violations(conn, retailer: str, acked: dict[str, D], codes: collections.Counter) -> list[str]:
    found = []
    # A race that proves anything: some reservations were booked and some refused, none answered otherwise.
    if not (codes["ok"] and codes["insufficient_credit"]) or set(codes) - {"ok", "insufficient_credit"}:
        found.append(f"not a race for the credit: answered {dict(codes)}")
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
        found += violations(conn, retailer, *race_acked(dsn, retailer, amounts))
    return found


def test_no_double_spend_in_a_32_way_race(dsn, conn):
    assert run_rounds(dsn, conn, 5) == []


@pytest.mark.checker_self_check
def test_the_race_catches_an_unlocked_reserve_credit(dsn, conn):
    """Self-check: without the row lock (and with the gap between check and
    write widened, as a slow machine would) the same race must overspend."""
    unlock_reserve_credit(conn)
    found = run_rounds(dsn, conn, 2)
    assert any(v.startswith("overspent") for v in found), found
    assert any(v == "reconcile: over_limit" for v in found), found


def test_a_race_that_books_nothing_or_raises_does_not_pass(dsn, conn):
    """Self-check of the race's own checks: every racer refused is not a race
    for the credit, and a racer whose call raised is reported, not lost."""
    conn.execute("SELECT credit.open_line(%s, 'blocked', %s)", [W, LIMIT])
    conn.execute("SELECT credit.block_line(%s, 'blocked', 'test')", [W])
    acked, codes = race_acked(dsn, "blocked", [D(10)] * 4)
    assert violations(conn, "blocked", acked, codes) == ["not a race for the credit: answered {'line_blocked': 4}"]
    with pytest.raises(RaceFailed, match="4 of 4 racers failed: x0: InvalidInput") as err:
        race(dsn, W, "blocked", [(f"x{i}", D("1.005")) for i in range(4)])
    assert isinstance(err.value.__cause__, InvalidInput)
