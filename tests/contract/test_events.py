"""SPEC v1.2 "Events", on a single server and through the proxy (one feed per
partition): an event for every change and none for a refusal, a replay or a
rolled-back change; the time-driven ones, written by the first call on the
line or by expire_reservations; the exactly-once, in-order guarantee under
out-of-order commits, with a naive reader that must miss events in the same
run; retention; a model that rebuilds every line from the feed alone; the
Python client's sync and async followers."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal as D

import psycopg
import pytest
from psycopg.rows import dict_row

import pgcredit as pc
from pgcredit.partitions import partition_of
from support.db import PARTITIONS, Proxy, call
from support.events import FeedModel, read_feed
from support.mutation import install_variant
from support.reliability import REPORTS

W, R = "w", "r"


@dataclass
class Deployment:
    """The test's database as a feed reader sees it: one feed on a single
    server, one per partition through the proxy."""

    conn: psycopg.Connection
    dsn: str
    proxy: Proxy | None

    @property
    def feeds(self) -> list[int | None]:
        return [None] if self.proxy is None else list(range(PARTITIONS))

    def feed_of(self, w: str, r: str) -> int | None:
        return None if self.proxy is None else partition_of(self.conn, w, r)

    def read(self, feed: int | None = None, after: int = 0, wholesaler_id: str | None = None) -> list[dict]:
        return read_feed(self.conn, feed, after, wholesaler_id)

    def line_feed(self, w: str = W, r: str = R) -> list[dict]:
        """The events of one line, from its feed."""
        return [e for e in self.read(self.feed_of(w, r)) if (e["wholesaler_id"], e["retailer_id"]) == (w, r)]

    @property
    def table_dsns(self) -> list[str]:
        """Where the tables are: the database, or each partition."""
        return [self.dsn] if self.proxy is None else self.proxy.partition_dsns()

    def spread(self, n: int, prefix: str = "r") -> list[str]:
        """n retailer ids of W, on n different feeds where there are that many."""
        return self.retailers(n, prefix) if self.proxy is None else self.retailers(1, prefix)[:n]

    def retailers(self, per_feed: int, prefix: str = "r") -> list[str]:
        """Retailer ids of W whose lines are spread over every feed, per_feed on each."""
        if self.proxy is None:
            return [f"{prefix}{i}" for i in range(per_feed)]
        found: list[list[str]] = [[] for _ in self.feeds]
        n = 0
        while min(len(f) for f in found) < per_feed:
            p = partition_of(self.conn, W, f"{prefix}{n}")
            if len(found[p]) < per_feed:
                found[p].append(f"{prefix}{n}")
            n += 1
        return [r for f in found for r in f]


@pytest.fixture
def dep(conn, dsn, proxy) -> Deployment:
    return Deployment(conn, dsn, proxy)


def brief(events: list[dict]) -> list[tuple]:
    return [(e["kind"], e["ref"], e["amount"]) for e in events]


# -- An event for every change ---------------------------------------------------------

def test_every_change_is_an_event_in_the_order_it_happened(dep):
    conn = dep.conn
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    call(conn, "open_line", W, R, 1000)
    call(conn, "reserve_credit", W, R, "o1", 100)
    call(conn, "reserve_credit", W, R, "o2", 50, dt.timedelta(hours=1))
    call(conn, "release_reservation", W, R, "o1", "cancelled")
    call(conn, "convert_to_debit", W, R, "o2", 30, today - dt.timedelta(days=10))  # 20 released
    call(conn, "record_payment", W, R, "p1", 10)
    call(conn, "reverse_debit", W, R, "o2", "rv1", 5, "damaged")
    call(conn, "adjust_balance", W, R, "a1", 7, "fee")
    call(conn, "set_overdue_policy", W, R, 0, 0, "strict")  # o2's 15 is past due: refusing from now
    call(conn, "record_payment", W, R, "p2", 100)  # pays everything: no longer refusing
    call(conn, "set_credit_limit", W, R, 2000, "season")
    call(conn, "block_line", W, R, "audit")
    call(conn, "block_line", W, R, "audit again")  # no change, no event
    call(conn, "unblock_line", W, R, "done")
    events = dep.line_feed()
    assert brief(events) == [
        ("line_opened", None, D("1000.00")),
        ("hold_reserved", "o1", D("100.00")),
        ("hold_reserved", "o2", D("50.00")),
        ("hold_released", "o1", D("100.00")),
        ("debit_booked", "o2", D("30.00")),
        ("payment_recorded", "p1", D("10.00")),
        ("debit_reversed", "rv1", D("5.00")),
        ("balance_adjusted", "a1", D("7.00")),
        ("overdue_policy_set", None, D("0.00")),
        ("overdue_began", None, D("15.00")),
        ("payment_recorded", "p2", D("100.00")),
        ("overdue_ended", None, D("0.00")),
        ("limit_changed", None, D("2000.00")),
        ("line_blocked", None, None),
        ("line_unblocked", None, None),
    ]
    ids = [e["event_id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all((e["wholesaler_id"], e["retailer_id"]) == (W, R) for e in events)
    data = [e["data"] for e in events]
    assert data[0] == {"currency": "INR", "payment_terms_days": 30, "available": "1000.00"}
    assert data[1] == {"available": "900.00"}
    assert set(data[2]) == {"available", "expires_at"} and data[2]["available"] == "850.00"
    assert data[3] == {"reason": "cancelled", "available": "950.00"}
    assert {k: v for k, v in data[4].items() if k != "ledger_entry_id"} == {
        "order_ref": "o2", "due_date": str(today - dt.timedelta(days=10)), "released_amount": "20.00",
        "remaining_amount": "0.00", "hold_status": "converted", "outstanding": "30.00", "available": "970.00",
        "final": True, "settlements": []}
    debit = data[4]["ledger_entry_id"]
    assert data[5]["settlements"] == [{"ledger_entry_id": debit, "entry_type": "DEBIT", "ref": "o2",
                                       "amount": "10.00"}]
    assert (data[5]["outstanding"], data[5]["available"]) == ("20.00", "980.00")
    assert (data[6]["order_ref"], data[6]["reason"], data[6]["outstanding"]) == ("o2", "damaged", "15.00")
    assert data[6]["settlements"] == [{"ledger_entry_id": debit, "entry_type": "DEBIT", "ref": "o2",
                                       "amount": "5.00"}]
    assert (data[7]["due_date"], data[7]["reason"], data[7]["settlements"]) == (str(today), "fee", [])
    assert data[8] == {"grace_days": 0, "max_overdue_amount": "0.00", "reason": "strict", "available": "978.00"}
    assert dt.datetime.fromisoformat(data[9]["effective_at"]) == events[9]["created_at"]  # by this change, now
    assert [(s["ref"], s["amount"]) for s in data[10]["settlements"]] == [("o2", "15.00"), ("a1", "7.00")]
    assert (data[10]["outstanding"], data[10]["available"]) == ("-78.00", "1078.00")
    assert data[11]["since"] == data[9]["effective_at"]
    assert data[12] == {"previous_limit": "1000.00", "valid_until": None, "reason": "season", "available": "2078.00"}
    assert data[13] == {"reason": "audit", "available": "2078.00"}


def test_refusals_replays_and_reads_write_no_event(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    call(conn, "reserve_credit", W, R, "o1", 60)
    before = dep.line_feed()
    assert call(conn, "reserve_credit", W, R, "o2", 60)["code"] == "insufficient_credit"
    assert call(conn, "reserve_credit", W, R, "o1", 60)["replayed"]
    assert call(conn, "open_line", W, R, 100)["replayed"]
    assert call(conn, "release_reservation", W, R, "nope")["code"] == "reservation_not_found"
    assert call(conn, "convert_to_debit", W, R, "o1", 61)["code"] == "exceeds_reservation_amount"
    call(conn, "get_available", W, R)
    call(conn, "get_reservation", W, R, "o1")
    call(conn, "can_reserve", W, R, 10)
    assert dep.line_feed() == before


def test_bulk_calls_write_each_items_event_in_item_order(dep):
    conn = dep.conn
    a, b = dep.spread(2)
    for r in (a, b):
        call(conn, "open_line", W, r, 100)
    rows = conn.execute("SELECT * FROM credit.reserve_credit_batch(%s, %s, %s, %s)",
                        [[W] * 3, [a, b, a], ["x1", "x2", "x3"], [10, 20, 30]]).fetchall()
    assert [r["code"] for r in rows] == ["ok"] * 3
    # A refusal among the items: each item then goes through reserve_credit.
    rows = conn.execute("SELECT * FROM credit.reserve_credit_batch(%s, %s, %s, %s)",
                        [[W] * 3, [a, a, b], ["y1", "y2", "y3"], [5, 500, 5]]).fetchall()
    assert [r["code"] for r in rows] == ["ok", "insufficient_credit", "ok"]
    conn.execute("SELECT * FROM credit.convert_to_debit_batch(%s, %s, %s, %s)",
                 [[W] * 2, [a, b], ["x1", "x2"], [4, None]]).fetchall()
    conn.execute("SELECT * FROM credit.record_payment_batch(%s, %s, %s, %s)",
                 [[W] * 3, [a, a, b], ["p1", "p2", "p1"], [1, 2, 3]]).fetchall()
    events = {r: dep.line_feed(W, r) for r in (a, b)}
    assert brief(events[a]) == [
        ("line_opened", None, D(100)), ("hold_reserved", "x1", D(10)), ("hold_reserved", "x3", D(30)),
        ("hold_reserved", "y1", D(5)), ("debit_booked", "x1", D(4)),
        ("payment_recorded", "p1", D(1)), ("payment_recorded", "p2", D(2))]
    assert [e["data"]["available"] for e in events[a][1:]] == ["90.00", "60.00", "55.00", "61.00", "62.00", "64.00"]
    assert [e["data"]["outstanding"] for e in events[a][5:]] == ["3.00", "1.00"]
    assert brief(events[b]) == [
        ("line_opened", None, D(100)), ("hold_reserved", "x2", D(20)), ("hold_reserved", "y3", D(5)),
        ("debit_booked", "x2", D(20)), ("payment_recorded", "p1", D(3))]
    assert events[b][-1]["data"]["settlements"][0]["amount"] == "3.00"


def test_amendments_shipments_and_remittances_are_events(dep):
    """SPEC v1.2's orders as they happen: an amendment is hold_amended (ref:
    the amendment's, the order in data), a shipment is debit_booked under its
    shipment_ref, the last one ends the hold; a payment that names its
    invoices says so, and settles them first."""
    conn = dep.conn
    call(conn, "open_line", W, R, 1000)
    call(conn, "reserve_credit", W, R, "o1", 300)
    assert call(conn, "amend_reservation", W, R, "o1", 400, "a1")["code"] == "ok"
    assert call(conn, "amend_reservation", W, R, "o1", 2000, "a-too-much")["code"] == "insufficient_credit"
    assert call(conn, "amend_reservation", W, R, "o1", 250, "a2")["code"] == "ok"
    assert call(conn, "amend_reservation", W, R, "o1", 250, "a2")["replayed"]
    assert call(conn, "convert_to_debit", W, R, "o1", 100, None, "s1")["code"] == "ok"
    assert call(conn, "convert_to_debit", W, R, "o1", 150, None, "s2")["status"] == "converted"
    call(conn, "reserve_credit", W, R, "o2", 100)
    call(conn, "convert_to_debit", W, R, "o2", 60)
    assert conn.execute("SELECT * FROM credit.record_payment(%s, %s, 'p1', 50, %s)",
                        [W, R, ["s2"]]).fetchone()["code"] == "ok"
    events = dep.line_feed()
    assert brief(events) == [
        ("line_opened", None, D(1000)), ("hold_reserved", "o1", D(300)),
        ("hold_amended", "a1", D(400)), ("hold_amended", "a2", D(250)),
        ("debit_booked", "s1", D(100)), ("debit_booked", "s2", D(150)),
        ("hold_reserved", "o2", D(100)), ("debit_booked", "o2", D(60)), ("payment_recorded", "p1", D(50))]
    data = [e["data"] for e in events]
    assert data[2] == {"order_ref": "o1", "previous_amount": "300.00", "remaining_amount": "400.00",
                       "hold_status": "active", "available": "600.00"}
    assert (data[3]["previous_amount"], data[3]["remaining_amount"], data[3]["available"]) == \
        ("400.00", "250.00", "750.00")
    assert [(d["order_ref"], d["final"], d["hold_status"], d["remaining_amount"], d["released_amount"])
            for d in data[4:6]] == [("o1", False, "active", "150.00", "0.00"), ("o1", False, "converted", "0.00", "0.00")]
    assert (data[7]["final"], data[7]["released_amount"], data[7]["hold_status"]) == (True, "40.00", "converted")
    assert data[8]["applies_to"] == ["s2"]
    assert [(x["ref"], x["amount"]) for x in data[8]["settlements"]] == [("s2", "50.00")]  # not the older s1
    model = FeedModel()
    model.apply_all(dep.read(dep.feed_of(W, R)), dep.feed_of(W, R))
    model.check_against(conn)


def test_a_raise_reads_the_same_in_the_feed_shipped_or_not(dep):
    """A raise on reserve_credit's fast path leaves a hold_amended with
    nothing shipped for events_after to complete from its amendment, and writes
    one after a shipment in full: the feed reads the same either way, and a
    cut (the careful path) after both follows on from them."""
    conn = dep.conn
    call(conn, "open_line", W, R, 1000)
    call(conn, "reserve_credit", W, R, "o1", 100)
    call(conn, "reserve_credit", W, R, "o2", 100)
    assert call(conn, "convert_to_debit", W, R, "o2", 30, None, "s1")["code"] == "ok"
    assert call(conn, "amend_reservation", W, R, "o1", 150, "a1")["remaining_amount"] == D(150)
    assert call(conn, "amend_reservation", W, R, "o2", "170.5", "a2")["remaining_amount"] == D("140.50")
    assert call(conn, "amend_reservation", W, R, "o1", 120, "a3")["code"] == "ok"
    events = [e for e in dep.line_feed() if e["kind"] == "hold_amended"]
    assert [(e["ref"], e["amount"], e["data"]) for e in events] == [
        ("a1", D(150), {"order_ref": "o1", "previous_amount": "100.00", "remaining_amount": "150.00",
                        "hold_status": "active", "available": "750.00"}),
        ("a2", D("170.50"), {"order_ref": "o2", "previous_amount": "100.00", "remaining_amount": "140.50",
                             "hold_status": "active", "available": "679.50"}),
        ("a3", D(120), {"order_ref": "o1", "previous_amount": "150.00", "remaining_amount": "120.00",
                        "hold_status": "active", "available": "709.50"})]
    model = FeedModel()
    model.apply_all(dep.read(dep.feed_of(W, R)), dep.feed_of(W, R))
    model.check_against(conn)


# -- Time-driven events -----------------------------------------------------------------

def test_an_expired_hold_is_written_by_the_first_call_on_its_line(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    call(conn, "reserve_credit", W, R, "soon", 30, dt.timedelta(milliseconds=1))
    time.sleep(0.02)
    assert call(conn, "get_available", W, R)["reserved"] == 0  # a read: no event, no sweep
    assert [e["kind"] for e in dep.line_feed()] == ["line_opened", "hold_reserved"]
    call(conn, "reserve_credit", W, R, "next", 10)
    events = dep.line_feed()
    assert brief(events[2:]) == [("hold_expired", "soon", D(30)), ("hold_reserved", "next", D(10))]
    expired = events[2]
    assert expired["data"]["effective_at"] == events[1]["data"]["expires_at"]  # the moment it took effect
    assert expired["created_at"] > dt.datetime.fromisoformat(expired["data"]["effective_at"])  # written later
    assert expired["data"]["available"] == "100.00"


def test_the_sweep_writes_the_time_driven_events_of_untouched_lines(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    until = conn.execute("SELECT clock_timestamp() + interval '300 ms' AS t").fetchone()["t"]
    call(conn, "set_credit_limit", W, R, 500, "promotion", until)
    call(conn, "reserve_credit", W, R, "soon", 30, dt.timedelta(milliseconds=1))
    time.sleep(0.4)
    assert [e["kind"] for e in dep.line_feed()][-2:] == ["limit_changed", "hold_reserved"]
    assert conn.execute("SELECT credit.expire_reservations() AS n").fetchone()["n"] == 1
    events = dep.line_feed()
    # Oldest moment first: the hold expired before the promotion ended.
    assert brief(events[-2:]) == [("hold_expired", "soon", D(30)), ("temporary_limit_ended", None, D(100))]
    ended = events[-1]["data"]
    assert dt.datetime.fromisoformat(ended["effective_at"]) == until
    assert (ended["previous_limit"], ended["available"]) == ("500.00", "100.00")
    assert conn.execute("SELECT credit.expire_reservations() AS n").fetchone()["n"] == 0
    assert len(dep.line_feed()) == len(events)  # once only


@pytest.mark.direct_only("the session's time zone stands in for the passing of days, and the proxy's "
                         "connections to the partitions keep their own")
def test_overdue_began_by_the_passing_of_days_says_when(dep):
    """A debit due today under a policy with no grace is not late; a day
    later it is, with no call having changed anything. A session a day ahead
    (UTC+14 against UTC-12) is that day later."""
    conn = dep.conn
    conn.execute("SET TimeZone = 'Etc/GMT+12'")
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    call(conn, "open_line", W, R, 1000)
    call(conn, "reserve_credit", W, R, "o", 40)
    call(conn, "convert_to_debit", W, R, "o", None, today)
    call(conn, "set_overdue_policy", W, R, 0, 0)
    assert dep.line_feed()[-1]["kind"] == "overdue_policy_set"
    conn.execute("SET TimeZone = 'Etc/GMT-14'")
    assert conn.execute("SELECT current_date > %s AS later", [today]).fetchone()["later"]
    conn.execute("SELECT credit.expire_reservations()")
    began = dep.line_feed()[-1]
    assert (began["kind"], began["amount"]) == ("overdue_began", D(40))
    # From the first day on which the debit counted as late, in this session's time zone.
    day = conn.execute("SELECT (%s::date + 1)::timestamptz AS t", [today]).fetchone()["t"]
    assert dt.datetime.fromisoformat(began["data"]["effective_at"]) == day <= began["created_at"]
    conn.execute("SELECT credit.expire_reservations()")
    assert call(conn, "reserve_credit", W, R, "o2", 1)["code"] == "overdue"
    assert dep.line_feed()[-1]["event_id"] == began["event_id"]  # written once


# -- Rolled back: no event ---------------------------------------------------------------

# Test-only triggers, on the database or on each partition: at commit, a
# random pause (so that transactions commit in another order than they took
# their event_ids), and a rollback for an event whose ref ends with !rollback;
# and the naive outbox, a copy of every event under its event_id, which a
# naive reader follows with `id > cursor`, as one that ignored the horizon
# would follow the feed.
TEST_TRIGGERS = """
CREATE TABLE public.naive_outbox (id bigint PRIMARY KEY, kind text NOT NULL, retailer_id text NOT NULL, ref text);
CREATE FUNCTION public.naive_copy() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO public.naive_outbox VALUES (NEW.event_id, NEW.kind, NEW.retailer_id, NEW.ref);
    RETURN NULL;
END $$;
CREATE TRIGGER naive_copy AFTER INSERT ON credit.event FOR EACH ROW EXECUTE FUNCTION public.naive_copy();
CREATE FUNCTION public.at_commit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.ref LIKE '%!rollback' THEN
        RAISE EXCEPTION 'rolled back by the test';
    END IF;
    PERFORM pg_sleep(random() * 0.02);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON credit.event
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.at_commit();
"""


def install_test_triggers(dep: Deployment) -> None:
    for dsn in dep.table_dsns:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(TEST_TRIGGERS)


def test_a_change_rolled_back_leaves_no_event(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    install_test_triggers(dep)
    with pytest.raises(psycopg.Error, match="rolled back by the test"):
        call(conn, "reserve_credit", W, R, "o!rollback", 10)
    with pytest.raises(psycopg.Error, match="rolled back by the test"):
        call(conn, "record_payment", W, R, "p!rollback", 10)
    assert call(conn, "get_reservation", W, R, "o!rollback")["code"] == "reservation_not_found"
    assert [e["kind"] for e in dep.line_feed()] == ["line_opened"]
    call(conn, "reserve_credit", W, R, "kept", 10)
    assert brief(dep.line_feed())[-1] == ("hold_reserved", "kept", D(10))


@pytest.mark.direct_only("a transaction of several calls: through the proxy each call commits on its partition")
def test_a_transaction_rolled_back_leaves_no_event(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    with pytest.raises(ZeroDivisionError):
        with conn.transaction():
            call(conn, "reserve_credit", W, R, "o1", 10)
            call(conn, "record_payment", W, R, "p1", 5)
            1 / 0
    assert [e["kind"] for e in dep.line_feed()] == ["line_opened"]


# -- Exactly once, in order, whatever the order of commits ----------------------------

WRITERS, READERS, OPS = 16, 3, 40


def test_concurrent_readers_get_every_committed_event_once_in_order(dep):
    """16 writers whose commits wait a random time after their events were
    written (so that they commit in another order than they took their
    event_ids), some of them rolled back; 3 readers per feed following it with
    the Python client while they write. Each reader gets exactly the feed,
    which holds exactly the committed changes. A naive reader of the same
    events by their event_id without the horizon (the classic outbox: `id >
    cursor`) must miss some in the same run, or the run did not interleave
    enough to prove anything."""
    race = feed_race(dep, reader_timeout=120)
    assert race.violations == [], race.violations
    assert race.naive_missed > 0, "no commit came out of order behind the naive reader: the run proves nothing"
    REPORTS.append(f"Events {dep.conn.info.parameter_status('server_version').split()[0]} "
                   f"{'direct' if dep.proxy is None else f'through a {PARTITIONS}-partition proxy'}: "
                   f"{WRITERS} writers x {OPS}, {race.committed} changes committed, {race.rolled_back} rolled "
                   f"back; {READERS} readers per feed each got all {race.events} events once, in order; "
                   f"the naive `id > cursor` reader missed {race.naive_missed}")


# Broken horizons (sql/functions/_event_horizon.sql), each of which lets a
# reader pass an event whose transaction is still open.
BROKEN_HORIZONS = {
    # The sample taken as usable at once: the sequence's last value, without
    # waiting for the transactions that drew ids below it to end.
    "no-wait": ("v_now := pg_snapshot_xmin(pg_current_snapshot()) >= v_xid;", "v_now := true;"),
    # The probe with a lock that writers do not conflict with: it always succeeds.
    "weak-probe": ("LOCK TABLE credit.event IN SHARE MODE NOWAIT;", "LOCK TABLE credit.event IN ACCESS SHARE MODE NOWAIT;"),
    # The run taken past its first gap: up to the largest event_id visible.
    "run-past-gap": ("WHERE r.event_id = v_h + r.n", "WHERE r.event_id >= v_h + r.n"),
}


@pytest.mark.checker_self_check
@pytest.mark.parametrize("broken", sorted(BROKEN_HORIZONS))
def test_the_race_catches_a_horizon_that_loses_events(dep, broken):
    """Self-check: a horizon advanced past an event_id whose transaction may
    still be open lets readers read past it, and skip it when it commits.
    The same race must find events missing."""
    for d in dep.table_dsns:
        with psycopg.connect(d, autocommit=True) as c:
            install_variant(c, "_event_horizon.sql", BROKEN_HORIZONS[broken])
    race = feed_race(dep, reader_timeout=5)
    assert race.violations, f"the broken horizon ({broken}) lost nothing the checks could see"
    REPORTS.append(f"Events self-check, a horizon broken ({broken}), "
                   f"{'direct' if dep.proxy is None else f'through a {PARTITIONS}-partition proxy'}: "
                   f"{race.violations[0]}")


@dataclass
class Race:
    violations: list[str]
    committed: int
    rolled_back: int
    events: int
    naive_missed: int


def feed_race(dep: Deployment, reader_timeout: float) -> Race:
    conn = dep.conn
    lines = dep.retailers(2)
    for r in lines:
        call(conn, "open_line", W, r, 10**9)
    install_test_triggers(dep)
    rng = random.Random(5)
    seeds = [rng.random() for _ in range(WRITERS)]
    committed: list[set] = [set() for _ in range(WRITERS)]
    rolled_back: list[set] = [set() for _ in range(WRITERS)]

    def writer(k: int) -> None:
        wr, mine = random.Random(seeds[k]), []
        with psycopg.connect(dep.dsn, autocommit=True) as c:
            for i in range(OPS):
                r, roll, op = wr.choice(lines), wr.random() < 0.15, wr.random()
                mark = "!rollback" if roll else ""
                try:
                    if dep.proxy is None and op < 0.15:  # several calls, one transaction
                        refs = [f"t{k}.{i}.{j}" for j in range(2)]
                        with c.transaction():
                            for ref in refs:
                                call(c, "reserve_credit", W, r, ref, 1)
                            time.sleep(wr.random() * 0.01)
                            if roll:
                                raise RuntimeError("rolled back by the writer")
                        committed[k].update(("hold_reserved", r, ref) for ref in refs)
                        mine += [(r, ref) for ref in refs]
                    elif op < 0.6:
                        ref = f"o{k}.{i}{mark}"
                        assert call(c, "reserve_credit", W, r, ref, 1)["code"] == "ok"
                        committed[k].add(("hold_reserved", r, ref))
                        mine.append((r, ref))
                    elif op < 0.8 and mine:
                        held, ref = mine.pop(wr.randrange(len(mine)))
                        assert call(c, "release_reservation", W, held, ref)["code"] == "ok"
                        committed[k].add(("hold_released", held, ref))
                    else:
                        ref = f"p{k}.{i}{mark}"
                        assert call(c, "record_payment", W, r, ref, 1)["code"] == "ok"
                        committed[k].add(("payment_recorded", r, ref))
                except (psycopg.Error, RuntimeError) as exc:
                    assert "rolled back by the" in str(exc), exc
                    rolled_back[k].add(f"{k}.{i}")

    received: dict[tuple, list[tuple]] = {}
    sentinels = {feed: None for feed in dep.feeds}
    stop = threading.Event()

    def reader(n: int, feed: int | None) -> None:
        client, got = pc.CreditClient(dep.dsn), []
        try:
            for event in client.events(0, partition=feed, batch=37, max_wait=0.05, stop=stop):
                got.append((event.event_id, event.kind, event.retailer_id, event.ref))
                if event.retailer_id == sentinels[feed]:
                    break
        finally:
            client.close()
            received[(n, feed)] = got

    naive_seen: dict[str, set] = {d: set() for d in dep.table_dsns}
    stop_naive = threading.Event()

    def naive_reader(table_dsn: str) -> None:
        cursor = 0
        with psycopg.connect(table_dsn, autocommit=True) as c:
            while True:
                done = stop_naive.is_set()
                rows = c.execute("SELECT id FROM public.naive_outbox WHERE id > %s ORDER BY id LIMIT 100",
                                 [cursor]).fetchall()
                for (i,) in rows:
                    naive_seen[table_dsn].add(i)
                    cursor = i
                if done and not rows:
                    return
                time.sleep(0.001)

    readers = [threading.Thread(target=reader, args=(n, feed)) for n in range(READERS) for feed in dep.feeds]
    naive = [threading.Thread(target=naive_reader, args=(d,)) for d in dep.table_dsns]
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
    for t in readers + naive + writers:
        t.start()
    for t in writers:
        t.join(120)
        assert not t.is_alive()
    # A last line on each feed: its line_opened is the last event there, and tells the readers to stop.
    for feed, r in zip(dep.feeds, dep.retailers(1, prefix="end")):
        sentinels[feed] = r
        call(conn, "open_line", W, r, 1)
    stop_naive.set()
    for t in naive:
        t.join(120)
    violations = []
    deadline = time.monotonic() + reader_timeout
    for t in readers:
        t.join(max(deadline - time.monotonic(), 0))
    if any(t.is_alive() for t in readers):
        violations.append(f"a reader did not reach the end of its feed in {reader_timeout} s: {feed_state(dep)}")
        stop.set()  # each returns after its current call
        for t in readers:
            t.join(30)
            assert not t.is_alive()

    expected = set().union(*committed)
    assert len(expected) > WRITERS * OPS / 2 and sum(map(len, rolled_back)) > 0
    everything = []
    for feed in dep.feeds:
        feed_events = [(e["event_id"], e["kind"], e["retailer_id"], e["ref"]) for e in dep.read(feed)]
        for n in range(READERS):
            got = received.get((n, feed), [])
            # Exactly the feed: every event, once, in event_id order, no gap it did not see.
            if got != feed_events[:len(got)] or (not stop.is_set() and got != feed_events):
                violations.append(f"reader {n} of feed {feed} got {len(got)} events, not the feed's "
                                  f"{len(feed_events)} in order")
        everything += feed_events
    changes = {(kind, r, ref) for _, kind, r, ref in everything if kind != "line_opened"}
    if changes != expected:  # the committed changes, and nothing rolled back
        violations.append(f"{len(expected - changes)} committed changes have no event, "
                          f"{len(changes - expected)} events are not committed changes")
    if any(ref and ref.endswith("!rollback") for *_, ref in everything):
        violations.append("an event of a rolled-back change")
    if len(everything) != len({(kind, r, ref) for _, kind, r, ref in everything}):
        violations.append("an event twice")

    # The naive outbox's reader, over the same events in the same run: what it missed.
    missed = 0
    for d in dep.table_dsns:
        with psycopg.connect(d, autocommit=True) as c:
            ids = {i for (i,) in c.execute("SELECT id FROM public.naive_outbox")}
        assert naive_seen[d] <= ids
        missed += len(ids - naive_seen[d])
    return Race(violations, len(expected), sum(map(len, rolled_back)), len(everything), missed)


def feed_state(dep: Deployment) -> list:
    """What the horizon sees, for a failure's message."""
    out = []
    for d in dep.table_dsns:
        with psycopg.connect(d, autocommit=True) as c:
            out.append((c.execute("SELECT * FROM credit.event_state").fetchone(),
                        c.execute("SELECT last_value FROM credit.event_id_seq").fetchone(),
                        c.execute("SELECT count(*), max(event_id) FROM credit.event").fetchone()))
    return out


# -- Retention ----------------------------------------------------------------------------

def test_pruned_events_are_never_missed_silently(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    call(conn, "reserve_credit", W, R, "old", 10)
    feed = dep.feed_of(W, R)
    old = dep.line_feed()
    time.sleep(0.3)
    call(conn, "reserve_credit", W, R, "new", 10)
    removed = conn.execute("SELECT credit.prune_events(interval '0.2 s') AS n").fetchone()["n"]
    assert removed == len(old) == 2
    kept = dep.read(feed, after=old[-1]["event_id"])
    assert brief(kept) == [("hold_reserved", "new", D(10))]
    for cursor in (0, old[0]["event_id"]):
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState,
                           match=f"^events_pruned: .* up to {old[-1]['event_id']} were pruned") as err:
            dep.read(feed, after=cursor)
        assert err.value.diag.message_detail == f"pruned_through={old[-1]['event_id']}"
    client = pc.CreditClient(dep.dsn)
    try:
        with pytest.raises(pc.EventsPruned) as err:
            client.events_after(0, partition=feed)
        assert err.value.pruned_through == old[-1]["event_id"]
        # Resuming at the largest pruned event_id reads what is kept.
        assert [e.ref for e in client.events_after(err.value.pruned_through, partition=feed)] == ["new"]
        # A cursor this feed never gave is refused, not silently waited on.
        with pytest.raises(pc.InvalidInput, match="beyond the last event_id"):
            client.events_after(kept[-1]["event_id"] + 1000, partition=feed)
    finally:
        client.close()
    assert conn.execute("SELECT credit.prune_events(interval '1 hour') AS n").fetchone()["n"] == 0
    # Pruning everything keeps the numbering: the next event does not reuse a pruned id.
    conn.execute("SELECT credit.prune_events(interval '0')")
    call(conn, "reserve_credit", W, R, "later", 1)
    assert dep.read(feed, after=kept[-1]["event_id"])[0]["event_id"] > kept[-1]["event_id"]


# -- The feed rebuilds the book -----------------------------------------------------------

def test_the_feed_replayed_from_zero_rebuilds_every_line(dep):
    """Every kind of change at random over lines on every feed, then a model
    fed by nothing but the events: it agrees with each event's available as
    it goes (FeedModel), and with every line's figures at the end."""
    conn = dep.conn
    rng = random.Random(23)
    today = conn.execute("SELECT current_date AS d").fetchone()["d"]
    lines = dep.retailers(2)
    refs = [f"o{i}" for i in range(12)]
    keys = [f"k{i}" for i in range(5)]
    for r in lines:
        call(conn, "open_line", W, r, rng.choice([0, 300, 1000, 5000]))

    def money(low=1, high=400):
        return D(rng.randrange(low * 100, high * 100)) / 100

    for step in range(400):
        r, op = rng.choice(lines), rng.randrange(17)
        if op <= 2:
            expiry = rng.choice([None, None, dt.timedelta(milliseconds=1), dt.timedelta(hours=1)])
            call(conn, "reserve_credit", W, r, rng.choice(refs), money(), expiry)
        elif op == 3:
            call(conn, "release_reservation", W, r, rng.choice(refs), rng.choice([None, "cancelled"]))
        elif op <= 5:
            due = rng.choice([None, today - dt.timedelta(days=rng.randrange(1, 60)),
                              today + dt.timedelta(days=10)])
            call(conn, "convert_to_debit", W, r, rng.choice(refs), rng.choice([None, money(1, 50)]), due)
        elif op == 6:
            call(conn, "record_payment", W, r, f"p{step}", money())
        elif op == 7:
            call(conn, "reverse_debit", W, r, rng.choice(refs), rng.choice(keys), money(1, 60), "returned")
        elif op == 8:
            amount = money(1, 100) * rng.choice([1, -1])
            call(conn, "adjust_balance", W, r, rng.choice(keys), amount, "correction")
        elif op == 9:
            until = None if rng.random() < 0.5 else conn.execute(
                "SELECT clock_timestamp() + %s::interval AS t", [rng.choice(["300 ms", "1 hour"])]).fetchone()["t"]
            call(conn, "set_credit_limit", W, r, rng.choice([0, 500, 2000, 9000]), "review", until)
        elif op == 10:
            call(conn, "block_line" if rng.random() < 0.5 else "unblock_line", W, r, "review")
        elif op == 11:
            call(conn, "set_overdue_policy", W, r, rng.choice([None, 0, 5]), rng.choice([0, 50]))
        elif op == 12:
            items = [(W, rng.choice(lines), rng.choice(refs), money()) for _ in range(rng.randrange(1, 4))]
            batch = rng.choice(["reserve_credit_batch", "convert_to_debit_batch", "record_payment_batch"])
            if batch == "convert_to_debit_batch":
                items = [(w, x, ref, None) for w, x, ref, _ in items]
            if batch == "record_payment_batch":
                items = [(w, x, f"q{step}.{i}", a) for i, (w, x, _, a) in enumerate(items)]
            conn.execute(f"SELECT * FROM credit.{batch}(%s::text[], %s::text[], %s::text[], %s::numeric[])",
                         [list(col) for col in zip(*items)]).fetchall()
        elif op == 14:
            call(conn, "amend_reservation", W, r, rng.choice(refs), money(), f"a{step}")
        elif op == 15:
            call(conn, "convert_to_debit", W, r, rng.choice(refs), rng.choice([None, money(1, 80)]), None,
                 f"s{step}")
        elif op == 16:
            named = rng.sample(refs + [f"s{i}" for i in range(step)], k=min(step, rng.randrange(1, 3)))
            conn.execute("SELECT * FROM credit.record_payment(%s, %s, %s, %s, %s)",
                         [W, r, f"r{step}", money(), named]).fetchone()
        else:
            time.sleep(0.01)
            conn.execute("SELECT credit.expire_reservations()")
    # Every kind at least once, whatever the dice left out.
    r = lines[0]
    call(conn, "set_credit_limit", W, r, 10**6, "room")
    call(conn, "block_line", W, r, "audit")
    call(conn, "unblock_line", W, r, "audit done")
    call(conn, "set_overdue_policy", W, r, None)
    call(conn, "reserve_credit", W, r, "last", 10)
    call(conn, "reserve_credit", W, r, "last-2", 10, dt.timedelta(milliseconds=1))
    assert call(conn, "amend_reservation", W, r, "last", 20, "last-a")["code"] == "ok"
    call(conn, "convert_to_debit", W, r, "last", 5, None, "last-s")
    call(conn, "convert_to_debit", W, r, "last")
    assert call(conn, "reverse_debit", W, r, "last", "last-rv", 5, "returned")["code"] == "ok"
    call(conn, "reserve_credit", W, r, "last-3", 10)
    call(conn, "release_reservation", W, r, "last-3")
    call(conn, "record_payment", W, r, "last-p", 1)
    call(conn, "adjust_balance", W, r, "last-adj", 1, "fee")
    until = conn.execute("SELECT clock_timestamp() + interval '300 ms' AS t").fetchone()["t"]
    call(conn, "set_credit_limit", W, lines[0], 777, "flash sale", until)
    time.sleep(0.35)  # the short temporary limits and the instant holds are over
    conn.execute("SELECT credit.expire_reservations()")

    model = FeedModel()
    for feed in dep.feeds:
        model.apply_all(dep.read(feed), feed)
    assert set(model.lines) == {(W, r) for r in lines}
    kinds = {e["kind"] for feed in dep.feeds for e in dep.read(feed)}
    assert kinds >= {"line_opened", "hold_reserved", "hold_amended", "hold_released", "hold_expired", "debit_booked",
                     "payment_recorded", "debit_reversed", "balance_adjusted", "limit_changed",
                     "temporary_limit_ended", "line_blocked", "line_unblocked", "overdue_policy_set"}
    model.check_against(conn)


# -- How events_after is called ------------------------------------------------------------

@pytest.mark.direct_only("transaction settings of the caller: through the proxy each call is a transaction "
                         "of its own on its partition")
def test_events_after_advances_only_in_a_read_committed_read_write_transaction(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    with pytest.raises(psycopg.errors.InvalidTransactionState, match="must run at READ COMMITTED"):
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            dep.read()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only transaction"):
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            dep.read()
    assert [e["kind"] for e in dep.read()] == ["line_opened"]


@pytest.mark.direct_only("holds the horizon's lock in a transaction of its own: through the proxy each call "
                         "commits on its partition")
def test_a_reader_does_not_wait_for_another(dep):
    """While one reader's transaction holds the horizon's lock, another
    reader reads what is readable instead of waiting: the committed events
    up to the first gap (here a rolled-back event), which only a sample can
    cross; once the first commits, the next call crosses it."""
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    with psycopg.connect(dep.dsn) as holder:
        first = read_feed(holder)  # takes the horizon's lock and keeps it until it commits
        with pytest.raises(ZeroDivisionError):
            with conn.transaction():
                call(conn, "reserve_credit", W, R, "o0", 10)
                1 / 0
        call(conn, "reserve_credit", W, R, "o1", 10)
        start = time.monotonic()
        assert dep.read() == first
        assert time.monotonic() - start < 1
        holder.commit()
    assert brief(first) == [("line_opened", None, D(100))]
    assert brief(dep.read()) == [("line_opened", None, D(100)), ("hold_reserved", "o1", D(10))]
    assert dep.read(after=first[-1]["event_id"])[0]["event_id"] == first[-1]["event_id"] + 2  # past the gap


def test_a_wholesalers_reader_gets_only_its_lines(dep):
    conn = dep.conn
    for w in ("w1", "w2"):
        for r in dep.spread(2, prefix=f"{w}r"):
            call(conn, "open_line", w, r, 100)
            call(conn, "reserve_credit", w, r, "o", 1)
    for feed in dep.feeds:
        mine = dep.read(feed, wholesaler_id="w1")
        assert mine == [e for e in dep.read(feed) if e["wholesaler_id"] == "w1"]
    assert sum(len(dep.read(feed, wholesaler_id="w1")) for feed in dep.feeds) == 4


@pytest.mark.direct_only("reads the index statistics of the session that read the feed")
def test_a_wholesalers_reader_uses_an_index_by_wholesaler_where_there_is_one(dep):
    """The feed has no index by wholesaler (it would be written with every
    event); a deployment that creates one (OPERATIONS.md) gets its
    wholesaler pages read by it, whatever number of calls came before."""
    conn = dep.conn
    for w in ("w1", "w2"):
        call(conn, "open_line", w, R, 10**6)
    for i in range(4):
        call(conn, "reserve_credit", "w2", R, f"o{i}", 1)
        # Many other events between (written as a writer would, without the calls' time).
        conn.execute("INSERT INTO credit.event (kind, wholesaler_id, retailer_id, ref, amount, available) "
                     "SELECT 'hold_reserved', 'w1', %s, 'x' || g, 1, 1 FROM generate_series(1, 5000) g", [R])
    mine = dep.read(wholesaler_id="w2")
    assert [e["ref"] for e in mine] == [None, "o0", "o1", "o2", "o3"]
    conn.execute("SET ROLE credit_owner")
    conn.execute("CREATE INDEX event_wholesaler_idx ON credit.event (wholesaler_id, event_id)")
    conn.execute("RESET ROLE")
    conn.execute("ANALYZE credit.event")

    def scans() -> int:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute("SELECT idx_scan FROM pg_stat_user_indexes "
                            "WHERE indexrelname = 'event_wholesaler_idx'").fetchone()["idx_scan"]

    before = scans()
    for _ in range(8):  # past the calls after which a cached plan would be made generic
        assert dep.read(wholesaler_id="w2") == mine
    assert scans() >= before + 8


# -- The Python client ----------------------------------------------------------------------

def test_the_client_follows_the_feed_and_waits_for_more(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    feed = dep.feed_of(W, R)
    client = pc.CreditClient(dep.dsn)
    try:
        first = client.events_after(0, partition=feed)
        assert [type(e) for e in first] == [pc.Event] and first[0].data == {
            "currency": "INR", "payment_terms_days": 30, "available": D("100.00")}
        follow = client.events(first[-1].event_id, W, partition=feed, max_wait=0.05)

        def later():
            time.sleep(0.3)
            call(conn, "reserve_credit", W, R, "o1", 10)

        threading.Thread(target=later).start()
        event = next(follow)  # waits for it
        assert (event.kind, event.ref, event.amount, event.data["available"]) == \
            ("hold_reserved", "o1", D("10.00"), D("90.00"))
        assert isinstance(event.created_at, dt.datetime) and event.event_id > first[-1].event_id
    finally:
        client.close()


def test_the_async_client_follows_the_feed(dep):
    conn = dep.conn
    call(conn, "open_line", W, R, 100)
    call(conn, "reserve_credit", W, R, "o1", 10)
    call(conn, "record_payment", W, R, "p1", 5)
    feed = dep.feed_of(W, R)

    async def run():
        client = pc.AsyncCreditClient(dep.dsn)
        try:
            got = []
            async for event in client.events(0, partition=feed, batch=2, max_wait=0.05):
                got.append(event)
                if len(got) == 3:
                    break
            return got
        finally:
            await client.close()

    got = asyncio.run(run())
    assert [(e.kind, e.ref) for e in got] == [("line_opened", None), ("hold_reserved", "o1"),
                                              ("payment_recorded", "p1")]
    assert got[2].data["outstanding"] == D("-5.00") and got[2].data["settlements"] == []


def test_a_follower_stops_when_told_even_while_it_waits(dep):
    call(dep.conn, "open_line", W, R, 100)
    feed = dep.feed_of(W, R)
    client = pc.CreditClient(dep.dsn)
    stop, got = threading.Event(), []
    follower = threading.Thread(target=lambda: got.extend(client.events(0, partition=feed, max_wait=5, stop=stop)))
    follower.start()
    time.sleep(0.5)  # it has the line's event and waits for more, up to 5 s between calls
    start = time.monotonic()
    stop.set()
    follower.join(10)
    assert not follower.is_alive() and time.monotonic() - start < 2
    assert [e.kind for e in got] == ["line_opened"]
    client.close()

    async def run():
        aclient, astop = pc.AsyncCreditClient(dep.dsn), asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, astop.set)
        try:
            return [e.kind async for e in aclient.events(0, partition=feed, max_wait=5, stop=astop)]
        finally:
            await aclient.close()

    start = time.monotonic()
    assert asyncio.run(run()) == ["line_opened"] and time.monotonic() - start < 3
