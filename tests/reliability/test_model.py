"""A stateful property test: every API operation is a rule, checked against a
plain Decimal model of the book after every step. Each example works on lines
of its own (a fresh wholesaler id), so examples share one database.

The model applies SPEC's allocation rule in its own way (a list of open
items per line) and checks past_due, the oldest unpaid due date, the overdue
policy and aging against it. Time moves only through the API: due dates in
the past on conversion, aging as of a later day, holds and temporary limits
that end a few milliseconds after they are made. The event feed, read as a
consumer reads it, rebuilds every line after every step, and says whether
the line refuses for overdue as the model does."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal as D

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from psycopg.rows import dict_row

from pgcredit import CreditClient
from support.events import FeedModel, read_feed
from support.mutation import install_variant

RETAILERS = st.sampled_from(["r0", "r1"])
REFS = st.sampled_from([f"o{i}" for i in range(6)])
KEYS = st.sampled_from([f"k{i}" for i in range(4)])
MONEY = st.integers(1, 3_000_00).map(lambda cents: D(cents) / 100)
SIGNED = st.integers(-1_000_00, 1_000_00).filter(bool).map(lambda cents: D(cents) / 100)
LIMITS = st.integers(0, 10_000).map(D)
INSTANT = timedelta(milliseconds=1)  # expired by the next step: each such reserve sleeps past it
EXPIRY = st.sampled_from([None, INSTANT, timedelta(hours=1)])
DUE_IN = st.sampled_from([None, -100, -40, -5, -1, 0, 10])  # days from today; None: payment terms
GRACE = st.sampled_from([None, 0, 3, 30])
TOLERATED = st.sampled_from([D(0), D(50), D(500)])
# How long a new limit lasts. valid_until is the client's clock, checked by the
# server to be in the future: a short one needs a margin for the round trip.
SHORT = timedelta(milliseconds=50)
TEMPORARY = st.sampled_from([None, SHORT, timedelta(hours=1)])


@dataclass
class Item:
    """An open item of the model: a DEBIT or positive ADJUSTMENT not yet paid."""

    seq: int  # the order entries were made in (ledger ids grow the same way)
    due: dt.date
    unpaid: D


@dataclass
class Hold:
    amount: D
    status: str = "active"
    expired: bool = False  # past expires_at; status stays 'active' until a sweep
    converted: D | None = None


@dataclass
class Line:
    limit: D
    status: str = "active"
    outstanding: D = D(0)
    holds: dict[str, Hold] = field(default_factory=dict)
    debits: dict[str, list] = field(default_factory=dict)  # order_ref -> [amount, reversed, item seq]
    entries: dict[tuple[str, str], D] = field(default_factory=dict)  # (kind, key) -> amount
    items: list[Item] = field(default_factory=list)
    unapplied: D = D(0)
    temp: tuple[D, float] | None = None  # a temporary limit and when it ends (time.time())
    policy: tuple[int, D] | None = None  # grace_days, max_overdue_amount

    @property
    def effective_limit(self) -> D:
        return self.temp[0] if self.temp and time.time() < self.temp[1] else self.limit

    @property
    def reserved(self) -> D:
        return sum((h.amount for h in self.holds.values() if h.status == "active" and not h.expired), D(0))

    @property
    def available(self) -> D:
        return self.effective_limit - self.reserved - self.outstanding

    # The allocation rule, written independently of the SQL.
    def add_item(self, seq: int, due: dt.date, amount: D) -> None:
        used = min(self.unapplied, amount)
        self.unapplied -= used
        if amount > used:
            self.items.append(Item(seq, due, amount - used))

    def settle(self, amount: D, first: int | None = None) -> None:
        order = sorted(self.items, key=lambda i: (i.seq != first, i.due, i.seq))
        for item in order:
            take = min(item.unpaid, amount)
            item.unpaid -= take
            amount -= take
            if not amount:
                break
        self.items = [i for i in self.items if i.unpaid]
        self.unapplied += amount

    def unpaid_before(self, day: dt.date) -> D:
        return sum((i.unpaid for i in self.items if i.due < day), D(0))

    def overdue(self, today: dt.date) -> bool:
        return self.policy is not None and self.unpaid_before(today - timedelta(days=self.policy[0])) > self.policy[1]

    def aging(self, as_of: dt.date) -> tuple:
        buckets = [D(0)] * 5
        for i in self.items:
            days = (as_of - i.due).days
            buckets[0 if days <= 0 else 1 if days <= 30 else 2 if days <= 60 else 3 if days <= 90 else 4] += i.unpaid
        return (*buckets, self.unapplied, self.outstanding, min((i.due for i in self.items), default=None))

    def sweep(self) -> int:
        """What every locking call does first: expired holds become 'expired'."""
        swept = [h for h in self.holds.values() if h.status == "active" and h.expired]
        for h in swept:
            h.status = "expired"
        return len(swept)


class CreditMachine(RuleBasedStateMachine):
    client: CreditClient
    conn: psycopg.Connection
    examples = itertools.count()

    def __init__(self):
        super().__init__()
        self.w = f"m{next(self.examples)}"
        self.lines: dict[str, Line] = {}
        self.seq = itertools.count()
        self.today = self.conn.execute("SELECT current_date AS d").fetchone()["d"]
        self.feed, self.cursor = FeedModel(), 0

    def call(self, name: str, *args):
        return getattr(self.client, name)(self.w, *args, check=False)

    def locked(self, r: str) -> Line | None:
        line = self.lines.get(r)
        if line:
            line.sweep()
        return line

    @initialize(limit=LIMITS)
    def open_first_line(self, limit):
        """r0 is open from the start, so that most steps act on a line; r1
        is opened by the open_line rule, if ever (line_not_found stays common)."""
        self.open_line("r0", limit)

    @rule(r=RETAILERS, limit=LIMITS)
    def open_line(self, r, limit):
        res = self.call("open_line", r, limit)
        line = self.lines.get(r)
        if line is None:
            self.lines[r] = Line(limit)
            assert (res.code, res.replayed, res.available) == ("ok", False, limit)
        elif line.limit == limit:
            assert (res.code, res.replayed, res.available) == ("ok", True, line.available)
        else:
            assert res.code == "exists_with_different_terms"

    @rule(r=RETAILERS, limit=LIMITS, lasts=TEMPORARY)
    def set_credit_limit(self, r, limit, lasts):
        until = dt.datetime.now(dt.timezone.utc) + lasts if lasts else None
        res = self.call("set_credit_limit", r, limit, "review", until)
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
            return
        if until is None:
            line.limit, line.temp = limit, None
        else:
            line.temp = (limit, until.timestamp())
        assert (res.code, res.credit_limit) == ("ok", limit)
        assert res.available == limit - line.reserved - line.outstanding
        if lasts == SHORT:
            time.sleep(0.06)  # the permanent limit is back by the next step, with no job run

    @rule(r=RETAILERS, grace=GRACE, tolerated=TOLERATED)
    def set_overdue_policy(self, r, grace, tolerated):
        res = self.call("set_overdue_policy", r, grace, tolerated)
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
            return
        line.policy = None if grace is None else (grace, tolerated)
        assert (res.code, res.grace_days) == ("ok", grace)

    @rule(r=RETAILERS, block=st.booleans())
    def block_or_unblock(self, r, block):
        res = self.call("block_line" if block else "unblock_line", r, "reason")
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
            return
        line.status = "blocked" if block else "active"
        assert (res.code, res.status) == ("ok", line.status)

    @rule(r=RETAILERS, ref=REFS, amount=MONEY, expires=EXPIRY)
    def reserve_credit(self, r, ref, amount, expires):
        res = self.call("reserve_credit", r, ref, amount, expires)
        if self.check_reserve(res, r, ref, amount) and expires == INSTANT:
            time.sleep(0.003)
            self.lines[r].holds[ref].expired = True

    @rule(items=st.lists(st.tuples(RETAILERS, REFS, MONEY), min_size=1, max_size=5), expires=EXPIRY)
    def reserve_credit_batch(self, items, expires):
        """Each item as reserve_credit would have answered it after the items before it."""
        res = self.client.reserve_credit_batch([(self.w, *item) for item in items], expires)
        assert [x.item for x in res] == list(range(1, len(items) + 1))
        made = [(r, ref) for x, (r, ref, amount) in zip(res, items) if self.check_reserve(x, r, ref, amount)]
        if made and expires == INSTANT:  # in force for the whole call: the batch is one transaction
            time.sleep(0.003)
            for r, ref in made:
                self.lines[r].holds[ref].expired = True

    def check_reserve(self, res, r, ref, amount) -> bool:
        """Checks one reservation's result against the model and applies it;
        True when it made a new hold."""
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
            return False
        hold = line.holds.get(ref)
        if hold is not None:  # a replay, whatever else has changed
            if hold.amount == amount:
                assert (res.code, res.replayed, res.status, res.available) == \
                    ("ok", True, hold.status, line.available)
            else:
                assert (res.code, res.amount) == ("exists_with_different_amount", hold.amount)
        elif line.status == "blocked":
            assert res.code == "line_blocked"
        elif line.overdue(self.today):
            assert res.code == "overdue"
        elif amount > line.available:
            assert (res.code, res.shortfall, res.available) == \
                ("insufficient_credit", amount - line.available, line.available)
        else:
            assert (res.code, res.replayed, res.available) == ("ok", False, line.available - amount)
            line.holds[ref] = Hold(amount)
            return True
        return False

    @rule(r=RETAILERS, ref=REFS)
    def release_reservation(self, r, ref):
        res = self.call("release_reservation", r, ref)
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
            return
        hold = line.holds.get(ref)
        if hold is None:
            assert res.code == "reservation_not_found"
        elif hold.status == "released":
            assert (res.code, res.replayed, res.released_amount) == ("ok", True, hold.amount)
        elif hold.status != "active":
            assert res.code == f"reservation_{hold.status}"
        else:
            hold.status = "released"
            assert (res.code, res.released_amount, res.available) == ("ok", hold.amount, line.available)

    @rule(r=RETAILERS, ref=REFS, amount=st.none() | MONEY, due_in=DUE_IN)
    def convert_to_debit(self, r, ref, amount, due_in):
        due = None if due_in is None else self.today + timedelta(days=due_in)
        res = self.call("convert_to_debit", r, ref, amount, due)
        self.check_convert(res, r, ref, amount, due)

    @rule(r=RETAILERS, ref=REFS, share=st.sampled_from([D("0.01"), D("0.5"), D("0.99")]), due_in=DUE_IN)
    def deliver_part(self, r, ref, share, due_in):
        """A partial delivery: a share of the hold's own amount. (Amounts drawn
        from MONEY fall below the hold they convert in under 1% of conversions.)"""
        line = self.lines.get(r)
        hold = line.holds.get(ref) if line else None
        amount = max(D("0.01"), (hold.amount * share).quantize(D("0.01"))) if hold else D("0.01")
        self.convert_to_debit(r, ref, amount, due_in)

    @rule(items=st.lists(st.tuples(RETAILERS, REFS, st.none() | MONEY), min_size=1, max_size=5))
    def convert_to_debit_batch(self, items):
        res = self.client.convert_to_debit_batch([(self.w, *item) for item in items])
        assert [x.item for x in res] == list(range(1, len(items) + 1))
        for x, (r, ref, amount) in zip(res, items):
            self.check_convert(x, r, ref, amount, None)

    def check_convert(self, res, r, ref, amount, due) -> None:
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
            return
        hold = line.holds.get(ref)
        if hold is None:
            assert res.code == "reservation_not_found"
        elif hold.status == "converted":
            same = (amount or hold.amount) == hold.converted
            assert (res.code, res.replayed) == (("ok", True) if same else ("exists_with_different_amount", False))
        elif hold.status != "active":
            assert res.code == f"reservation_{hold.status}"
        elif amount is not None and amount > hold.amount:
            assert res.code == "exceeds_reservation_amount"
        else:
            debit = amount or hold.amount
            hold.status, hold.converted = "converted", debit
            line.outstanding += debit
            seq = next(self.seq)
            line.debits[ref] = [debit, D(0), seq]
            line.add_item(seq, due or self.today + timedelta(days=30), debit)
            assert (res.code, res.debited_amount, res.released_amount, res.available, res.due_date) == \
                ("ok", debit, hold.amount - debit, line.available, due or self.today + timedelta(days=30))

    @rule(r=RETAILERS, ref=REFS, amount=MONEY, due_in=DUE_IN)
    def deliver(self, r, ref, amount, due_in):
        """An order reserved and delivered in one step: without it, histories
        with several open items before a payment are rare."""
        self.reserve_credit(r, ref, amount, None)
        self.convert_to_debit(r, ref, None, due_in)

    def _entry(self, res, line: Line, kind: str, key: str, amount: D) -> bool:
        """Replay or conflict of an earlier entry; True if the call was new."""
        earlier = line.entries.get((kind, key))
        if earlier is None:
            return True
        assert (res.code, res.replayed) == (("ok", True) if earlier == amount
                                            else ("exists_with_different_amount", False))
        return False

    @rule(r=RETAILERS, key=KEYS, amount=MONEY)
    def record_payment(self, r, key, amount):
        self.check_payment(self.call("record_payment", r, key, amount), r, key, amount)

    @rule(items=st.lists(st.tuples(RETAILERS, KEYS, MONEY), min_size=1, max_size=5))
    def record_payment_batch(self, items):
        res = self.client.record_payment_batch([(self.w, *item) for item in items])
        assert [x.item for x in res] == list(range(1, len(items) + 1))
        for x, (r, key, amount) in zip(res, items):
            self.check_payment(x, r, key, amount)

    def check_payment(self, res, r, key, amount) -> None:
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
        elif self._entry(res, line, "CREDIT", key, amount):
            line.entries[("CREDIT", key)] = amount
            line.outstanding -= amount
            next(self.seq)
            line.settle(amount)
            assert (res.code, res.outstanding, res.available) == ("ok", line.outstanding, line.available)

    @rule(r=RETAILERS, ref=REFS, key=KEYS, amount=MONEY)
    def reverse_debit(self, r, ref, key, amount):
        res = self.call("reverse_debit", r, ref, key, amount, "returned")
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
        elif self._entry(res, line, "REVERSAL", key, amount):
            debit = line.debits.get(ref)
            if debit is None:
                assert res.code == "debit_not_found"
            elif debit[1] + amount > debit[0]:
                assert res.code == "exceeds_debit_amount"
            else:
                debit[1] += amount
                line.entries[("REVERSAL", key)] = amount
                line.outstanding -= amount
                next(self.seq)
                line.settle(amount, first=debit[2])
                assert (res.code, res.outstanding) == ("ok", line.outstanding)

    @rule(r=RETAILERS, key=KEYS, amount=SIGNED)
    def adjust_balance(self, r, key, amount):
        res = self.call("adjust_balance", r, key, amount, "correction")
        line = self.locked(r)
        if line is None:
            assert res.code == "line_not_found"
        elif self._entry(res, line, "ADJUSTMENT", key, amount):
            line.entries[("ADJUSTMENT", key)] = amount
            line.outstanding += amount
            seq = next(self.seq)
            if amount > 0:
                line.add_item(seq, self.today, amount)
            else:
                line.settle(-amount)
            assert (res.code, res.outstanding) == ("ok", line.outstanding)

    @rule(r=RETAILERS, amount=MONEY)
    def can_reserve(self, r, amount):
        res = self.call("can_reserve", r, amount)
        line = self.lines.get(r)  # a read: takes no lock, sweeps nothing
        if line is None:
            assert res.code == "line_not_found"
        elif line.status == "blocked":
            assert res.code == "line_blocked"
        elif line.overdue(self.today):
            assert res.code == "overdue"
        else:
            assert (res.code, res.available) == \
                ("insufficient_credit" if amount > line.available else "ok", line.available)

    @rule()
    def expire_reservations(self):
        assert self.client.expire_reservations() == sum(line.sweep() for line in self.lines.values())

    @invariant()
    def totals_match_the_model(self):
        rows = {r["retailer_id"]: r for r in self.conn.execute(
            "SELECT retailer_id, status, credit_limit, reserved, outstanding, available "
            "FROM credit.line_summary WHERE wholesaler_id = %s", [self.w])}
        assert set(rows) == set(self.lines)
        for r, line in self.lines.items():
            assert (rows[r]["status"], rows[r]["credit_limit"], rows[r]["reserved"], rows[r]["outstanding"],
                    rows[r]["available"]) == (line.status, line.effective_limit, line.reserved, line.outstanding,
                                              line.available), r

    @invariant()
    def receivables_match_the_model(self):
        for r, line in self.lines.items():
            a = self.client.get_available(self.w, r)
            assert (a.past_due, a.oldest_unpaid_due_date) == \
                (line.unpaid_before(self.today), min((i.due for i in line.items), default=None)), r
            later = self.today + timedelta(days=45)
            for as_of in (self.today, later):
                rows = self.client.aging(as_of, self.w, r)
                expected = line.aging(as_of)
                if line.items or line.unapplied:
                    assert len(rows) == 1 and tuple(vars(rows[0]).values())[3:] == expected, (r, as_of)
                else:
                    assert rows == [], (r, as_of)

    @invariant()
    def the_feed_rebuilds_the_lines(self):
        """The example's events, read as a consumer would (this wholesaler's
        only), rebuild every line: each event agrees with the lines as they
        were, and the lines now agree with get_available."""
        events = read_feed(self.conn, None, self.cursor, self.w)
        if events:
            self.cursor = events[-1]["event_id"]
        self.feed.apply_all(events)
        assert {r for _, r in self.feed.lines} == set(self.lines)
        self.feed.check_against(self.conn)
        for (_, r), line in self.feed.lines.items():
            # Days do not pass here: only a change begins or ends the refusals, and it writes the event.
            assert line.overdue == self.lines[r].overdue(self.today), r

    def teardown(self):
        self.client.expire_reservations(1_000_000)  # the next example counts its own sweeps from zero
        assert self.client.reconcile() == []


def test_credit_state_machine(dsn, long_run):
    # 120 examples: with r0 open from the start each step does more, and 120 x 50
    # make about as many calls (~28,000) as 200 x 50 did before.
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        CreditMachine.client, CreditMachine.conn = CreditClient(conn), conn
        run_state_machine_as_test(CreditMachine, settings=settings(
            max_examples=1000 if long_run else 120, stateful_step_count=100 if long_run else 50,
            deadline=None, suppress_health_check=list(HealthCheck), database=None))


# Deliberately broken variants (support.mutation) the machine must catch with
# few examples: the self-checks of the property test.
BROKEN = {
    # The sweep marks expired holds but leaves their amount reserved.
    "sweep_keeps_the_expired_amount": ("_sweep_line.sql", ("SET reserved = l.reserved - v_amount,",
                                                           "SET reserved = l.reserved,")),
    # A partial conversion keeps the part it did not debit reserved.
    "partial_conversion_keeps_the_rest": ("convert_to_debit.sql", ("ARRAY[v_due], ARRAY[h.id], ARRAY[h.amount]))[1];",
                                                                   "ARRAY[v_due], ARRAY[h.id], ARRAY[v_amount]))[1];")),
}


@pytest.mark.parametrize("variant", BROKEN)
def test_the_machine_catches_a_broken_variant(dsn, variant):
    name, edit = BROKEN[variant]
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        install_variant(conn, name, edit)
        CreditMachine.client, CreditMachine.conn = CreditClient(conn), conn
        # Fixed examples (derandomize), no shrinking: cheap, and the same every run.
        with pytest.raises(AssertionError):
            run_state_machine_as_test(CreditMachine, settings=settings(
                max_examples=50, stateful_step_count=30, derandomize=True, phases=[Phase.generate],
                deadline=None, suppress_health_check=list(HealthCheck), database=None, report_multiple_bugs=False))
