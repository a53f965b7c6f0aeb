"""Issue 3's proof: the invariants hold under contention (T1) and faults (T2),
and each check is shown to fail on a system without the protection it tests.
`pytest --long` runs the long versions."""

from __future__ import annotations

import collections

import psycopg
import pytest

from support.db import private_server
from pgcredit import migrate
from support.mutation import install_variant
from support.reliability import (
    RELEASE_NOT_DONE, RELEASE_UNTOLD, check_t1, contention, contention_report, database_violations, fault_report,
    fault_violations, faults, history_violations, order_contention, order_contention_report, order_violations,
    orders, replay_reported_as_new, report, unlock_amend_reservation, unlock_reserve_credit,
    unlock_reserve_credit_batch, unlock_shipments,
)


def test_t1_contention(cluster, dsn, conn, long_run):
    ops = 2000 if long_run else 150
    history = contention(dsn, workers=16, ops=ops)
    violations = history_violations(history.acks) + database_violations(conn, history.acks) + history.errors
    report(contention_report(f"T1 contention pg{cluster.major} (16 x {ops})", history, violations))
    assert violations == []
    check_t1(history, ops)


@pytest.mark.checker_self_check
def test_t1_checker_catches_a_replay_reported_as_new(cluster, dsn, conn):
    """Self-check of the pair steps and of history_violations: against a
    reserve_credit that answers a replay as a new booking, the reservations
    sent twice at once come back as two bookings of one key."""
    replay_reported_as_new(conn)
    weights = [10, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    history = contention(dsn, workers=4, ops=10, weights=weights)
    found = history_violations(history.acks)
    report(contention_report(f"T1 self-check, replays answered as new, pg{cluster.major} (4 x 10)",
                             history, found))
    assert history.errors == [] and database_violations(conn, history.acks) == []  # the book itself is right
    assert any(v.startswith("reserve of ") and "/pair" in v and v.endswith("applied 2 times") for v in found), found


@pytest.mark.checker_self_check
def test_t1_checker_catches_an_unlocked_reserve_credit_batch(cluster):
    """The same checker, on runs of mostly bulk reservations (and releases and
    payments to free credit), against a reserve_credit_batch whose fast path
    checks credit without the line lock. The race needs two batches to read a
    line at the same moment; a run that happens not to is followed by another,
    on a fresh database with other seeds (at most three)."""
    weights = [0, 0, 20, 4, 4, 10, 0, 0, 30, 0, 4]
    for seed in (1, 2, 3):
        name = cluster.create_database()
        try:
            with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
                unlock_reserve_credit_batch(conn)
                history = contention(cluster.dsn(name), workers=8, ops=20, seed=seed, weights=weights)
                violations = (history_violations(history.acks) + database_violations(conn, history.acks)
                              + history.errors)
        finally:
            cluster.drop_database(name)
        report(contention_report(f"T1 self-check, unlocked reserve_credit_batch, pg{cluster.major} "
                                 f"(8 x 20, seed {seed})", history, violations))
        if history.counts["sampled_overspend"]:
            break
    assert history.counts["sampled_overspend"] > 0 and violations


@pytest.mark.checker_self_check
def test_t1_checker_catches_an_unlocked_reserve_credit(cluster, dsn, conn):
    unlock_reserve_credit(conn)
    history = contention(dsn, workers=16, ops=60)
    violations = history_violations(history.acks) + database_violations(conn, history.acks) + history.errors
    report(contention_report(f"T1 self-check, unlocked reserve_credit, pg{cluster.major} (16 x 60)",
                             history, violations))
    # The sampler sees the overspend while it lasts (later releases and payments may undo it).
    assert history.counts["sampled_overspend"] > 0 and violations


@pytest.fixture
def fault_server(cluster):
    """A cluster of the test's own: T2 crashes it."""
    with private_server(cluster) as server:
        dsn = server.ensure_database("t2")
        migrate(dsn)
        yield server, dsn


def test_t2_faults_lose_phantom_and_duplicate_nothing(cluster, fault_server, long_run):
    server, dsn = fault_server
    seconds = 60 if long_run else 10
    history = faults(server, dsn, seconds)
    with psycopg.connect(dsn) as conn:
        found = fault_violations(conn, history)
        other = history_violations(history.acks) + database_violations(conn, history.acks) + history.errors
    report(fault_report(f"T2 faults pg{cluster.major} ({seconds} s)", history, found, other))
    assert found == {"lost": [], "phantom": [], "duplicate": []}
    assert other == []
    c = history.counts
    assert c["server_crashes"] == 2 and c["backends_killed"] > 0 and c["dropped_acks"] > 0
    assert c["client_retry_55P03"] > 0 and c["client_retry_57014"] > 0  # both timeouts fired
    assert c["unknown_outcomes"] > 0


def test_t2_retrying_under_a_new_key_books_twice(cluster, fault_server):
    server, dsn = fault_server
    history = faults(server, dsn, 6, new_key=True)
    with psycopg.connect(dsn) as conn:
        found = fault_violations(conn, history)
    report(fault_report(f"T2 self-check, retries under a new key, pg{cluster.major} (6 s)", history, found, []))
    assert found["duplicate"]


def test_t1_orders_amend_ship_and_release_under_contention(cluster, dsn, conn, client, long_run):
    """SPEC v1.2 under contention: raises and cuts race new orders on nearly
    full lines, shipments race releases and final conversions of the same
    holds. No credit is spent twice, no cut is refused, no raise is granted
    beyond what was available, and every total is what the answers imply."""
    ops = 2000 if long_run else 150
    history = order_contention(dsn, workers=16, ops=ops)
    violations = order_violations(conn, client, history.acks) + history.errors
    report(order_contention_report(f"T1 orders pg{cluster.major} (16 x {ops})", history, violations))
    assert violations == [] and history.counts["sampled_overspend"] == 0
    codes = collections.Counter((a.op, a.result.code) for a in history.acks)
    for op, code in (("amend", "ok"), ("amend", "insufficient_credit"), ("ship", "ok"), ("release", "ok"),
                     ("convert", "ok"), ("payment", "ok"), ("reserve", "insufficient_credit")):
        assert codes[(op, code)] > 0, (op, code)
    cuts = [a for a in history.acks if a.op == "amend" and a.result.code == "ok" and a.amount < a.result.previous_amount]
    assert cuts and history.counts["samples"] > 10


@pytest.mark.checker_self_check
def test_t1_orders_checker_catches_an_unlocked_amend_reservation(cluster, dsn, conn, client):
    """The same checker against an amend_reservation that checks a raise on
    the line read without its lock: raises race each other past the limit."""
    unlock_amend_reservation(conn)
    history = order_contention(dsn, workers=16, ops=60, weights=[10, 60, 5, 5, 0, 5, 15, 0])
    violations = order_violations(conn, client, history.acks) + history.errors
    report(order_contention_report(f"T1 orders self-check, unlocked amend_reservation, pg{cluster.major} (16 x 60)",
                                   history, violations))
    assert violations
    assert history.counts["sampled_overspend"] > 0 or any("raise" in v or "over_limit" in v for v in violations)


@pytest.mark.checker_self_check
def test_t1_orders_checker_catches_shipments_racing_releases_unlocked(cluster, dsn, conn, client):
    """The same checker against a convert_to_debit that books a shipment on a
    hold read without the line lock: a release in between frees what the
    shipment then debits as well."""
    unlock_shipments(conn)
    history = order_contention(dsn, workers=16, ops=60, weights=[25, 0, 0, 40, 0, 35, 0, 0])
    violations = order_violations(conn, client, history.acks) + history.errors
    report(order_contention_report(f"T1 orders self-check, shipments unlocked, pg{cluster.major} (16 x 60)",
                                   history, violations))
    assert any(v.startswith(("hold ", "line ", "reconcile: hold_state", "reconcile: reserved_total"))
               for v in violations), violations[:5]


@pytest.mark.parametrize("kind, variant", [("phantom", RELEASE_UNTOLD), ("lost", RELEASE_NOT_DONE)])
def test_the_fault_checker_finds_phantoms_and_losses(cluster, dsn, conn, kind, variant):
    """Self-checks of T2's categories: against a release_reservation that
    releases without saying so, the checker must report phantoms; against one
    that says so without releasing, losses. (duplicate: the new-key run above;
    lost after a real failover: test_failover.py's asynchronous self-check.)"""
    install_variant(conn, *variant)
    history = orders(dsn, 1.0)
    found = fault_violations(conn, history)
    report(f"T2 checker self-check pg{cluster.major}, release_reservation {kind} variant (4 workers, 1 s, "
           f"no faults): {len(history.acks)} ops acknowledged; lost {len(found['lost'])}, "
           f"phantom {len(found['phantom'])}, duplicate {len(found['duplicate'])}")
    assert history.errors == []
    assert found[kind] and all(f.endswith("acknowledgements say active" if kind == "phantom" else
                                          "acknowledgements say released") for f in found[kind]), found
