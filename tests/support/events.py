"""The event feed as a consumer sees it: reading a feed to its end, and a
model that rebuilds every line's figures from the events alone (the feed's
model tests: tests/contract/test_events.py, tests/reliability/test_model.py).

The model knows nothing but what SPEC's events carry: a line's limit from
line_opened and the limit events, its holds from the hold events (what
remains of each, with its expiry: amendments and shipments change it), its
outstanding from the entries, its open items from the DEBITs, positive
adjustments and the settlements each entry reports. It checks every
event's data.available against its own figures as the event is applied, and
a hold's ending against the hold it knew."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import psycopg
from psycopg.rows import dict_row


def read_feed(conn: psycopg.Connection, partition: int | None = None, after: int = 0,
              wholesaler_id: str | None = None, page: int = 1000) -> list[dict]:
    """Every event after `after` (of one partition's feed through a proxy), in event_id order."""
    out: list[dict] = []
    while True:
        args: list[Any] = [after, page, wholesaler_id]
        sql = "SELECT * FROM credit.events_after(%s, %s, %s" + (", %s)" if partition is not None else ")")
        if partition is not None:
            args.append(partition)
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(sql, args).fetchall()
        out += rows
        if len(rows) < page:
            return out
        after = rows[-1]["event_id"]


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


@dataclass
class LineModel:
    currency: str
    terms: int
    limit: D
    temp: tuple[D, dt.datetime] | None = None  # a temporary limit and when it ends
    status: str = "active"
    holds: dict[str, list] = field(default_factory=dict)  # active ones: [what remains, expires_at]
    outstanding: D = D(0)
    items: dict[int, list] = field(default_factory=dict)  # open items: ledger_entry_id -> [due_date, unpaid]
    policy: tuple[int, D] | None = None
    overdue: bool = False

    def limit_at(self, at: dt.datetime) -> D:
        return self.temp[0] if self.temp and self.temp[1] > at else self.limit

    def reserved_at(self, at: dt.datetime) -> D:
        return sum((a for a, until in self.holds.values() if until is None or until > at), D(0))

    def available_at(self, at: dt.datetime) -> D:
        return self.limit_at(at) - self.reserved_at(at) - self.outstanding

    def past_due(self, today: dt.date) -> D:
        return sum((unpaid for due, unpaid in self.items.values() if due < today), D(0))

    def oldest_unpaid(self) -> dt.date | None:
        return min((due for due, _ in self.items.values()), default=None)


class FeedModel:
    """Lines rebuilt from events, applied in event_id order."""

    def __init__(self):
        self.lines: dict[tuple[str, str], LineModel] = {}
        self.last: dict[int | None, int] = {}  # the last event_id applied, per feed

    def apply_all(self, events: list[dict], feed: int | None = None) -> None:
        for e in events:
            assert e["event_id"] > self.last.get(feed, 0), ("out of order", e)
            self.last[feed] = e["event_id"]
            self.apply(e)

    def apply(self, e: dict) -> None:
        key, kind, data, amount = (e["wholesaler_id"], e["retailer_id"]), e["kind"], e["data"], e["amount"]
        if kind == "line_opened":
            assert key not in self.lines, e
            assert not data.get("upgraded"), "a line from before the feed: its holds are not in it"
            line = self.lines[key] = LineModel(data["currency"], data["payment_terms_days"], amount)
        else:
            line = self.lines[key]
        ref = e["ref"]
        if kind == "line_opened":
            pass
        elif kind == "limit_changed":
            if data["valid_until"] is None:
                line.limit, line.temp = amount, None
            else:
                line.temp = (amount, _time(data["valid_until"]))
        elif kind == "temporary_limit_ended":
            assert line.temp is not None and line.temp[1] == _time(data["effective_at"]), e
            line.temp = None
            assert amount == line.limit, e
        elif kind in ("line_blocked", "line_unblocked"):
            line.status = "blocked" if kind == "line_blocked" else "active"
        elif kind == "overdue_policy_set":
            line.policy = None if data["grace_days"] is None else (data["grace_days"], D(data["max_overdue_amount"]))
        elif kind in ("overdue_began", "overdue_ended"):
            assert line.overdue == (kind == "overdue_ended"), e
            line.overdue = kind == "overdue_began"
        elif kind == "hold_reserved":
            assert ref not in line.holds, e
            line.holds[ref] = [amount, _time(data.get("expires_at"))]
        elif kind == "hold_amended":  # ref: the amendment's; the order is in data
            hold = line.holds[data["order_ref"]]
            hold[0] += amount - D(data["previous_amount"])
            assert hold[0] == D(data["remaining_amount"]), e
            if data["hold_status"] == "converted":  # cut to what was shipped: nothing left to hold
                assert line.holds.pop(data["order_ref"])[0] == 0, e
        elif kind in ("hold_released", "hold_expired"):
            held, until = line.holds.pop(ref)
            assert held == amount, e
            if kind == "hold_expired":
                assert until is not None and until == _time(data["effective_at"]) and until <= e["created_at"], e
        elif kind == "debit_booked":  # ref: the shipment's, or the order's for its final conversion
            hold = line.holds[data["order_ref"]]
            assert data["final"] == (ref == data["order_ref"]), e
            hold[0] -= amount
            if data["hold_status"] == "converted":
                assert hold[0] == D(data["released_amount"]) and line.holds.pop(data["order_ref"]), e
            else:
                assert not data["final"] and hold[0] == D(data["remaining_amount"]) > 0, e
            line.outstanding += amount
            line.items[data["ledger_entry_id"]] = [_date(data["due_date"]), amount]
        elif kind in ("payment_recorded", "debit_reversed"):
            line.outstanding -= amount
        elif kind == "balance_adjusted":
            line.outstanding += amount
            if amount > 0:
                line.items[data["ledger_entry_id"]] = [_date(data["due_date"]), amount]
        else:
            raise AssertionError(f"unknown kind {kind}: {e}")
        for s in data.get("settlements", []):
            item = line.items[s["ledger_entry_id"]]
            item[1] -= D(s["amount"])
            assert item[1] >= 0, e
            if item[1] == 0:
                del line.items[s["ledger_entry_id"]]
        if "outstanding" in data:
            assert D(data["outstanding"]) == line.outstanding, e
        # What get_available would have said right after the change.
        assert D(data["available"]) == line.available_at(e["created_at"]), (e, line)

    def check_against(self, conn: psycopg.Connection, wholesaler_ids: set[str] | None = None) -> None:
        """Every line's figures now, from get_available, against the model."""
        for (w, r), line in self.lines.items():
            if wholesaler_ids is not None and w not in wholesaler_ids:
                continue
            with conn.cursor(row_factory=dict_row) as cur:
                a = cur.execute("SELECT now(), current_date AS today, a.* "
                                "FROM credit.get_available(%s, %s) a", [w, r]).fetchone()
            want = dict(code="ok", credit_limit=line.limit_at(a["now"]), reserved=line.reserved_at(a["now"]),
                        outstanding=line.outstanding, available=line.available_at(a["now"]), status=line.status,
                        currency=line.currency, past_due=line.past_due(a["today"]),
                        oldest_unpaid_due_date=line.oldest_unpaid(),
                        limit_valid_until=line.temp[1] if line.temp and line.temp[1] > a["now"] else None)
            got = {k: a[k] for k in want}
            assert got == want, ((w, r), got, want)
