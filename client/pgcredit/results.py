"""Frozen result types, one per SQL result type; fields in the SQL column order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class OpenLineResult:
    code: str
    line_id: int | None
    credit_limit: Decimal | None
    reserved: Decimal | None
    outstanding: Decimal | None
    available: Decimal | None
    status: str | None
    replayed: bool


@dataclass(frozen=True)
class LimitResult:
    code: str
    credit_limit: Decimal | None
    reserved: Decimal | None
    outstanding: Decimal | None
    available: Decimal | None


@dataclass(frozen=True)
class StatusResult:
    code: str
    status: str | None


@dataclass(frozen=True)
class AvailableResult:
    code: str
    credit_limit: Decimal | None
    reserved: Decimal | None
    outstanding: Decimal | None
    available: Decimal | None
    status: str | None
    currency: str | None
    past_due: Decimal | None
    oldest_unpaid_due_date: dt.date | None
    limit_valid_until: dt.datetime | None


@dataclass(frozen=True)
class CanReserveResult:
    code: str
    can_reserve: bool | None
    available: Decimal | None
    shortfall: Decimal | None


@dataclass(frozen=True)
class ReserveResult:
    code: str
    reservation_id: int | None
    status: str | None
    amount: Decimal | None
    available: Decimal | None
    shortfall: Decimal | None
    replayed: bool


@dataclass(frozen=True)
class ReleaseResult:
    code: str
    reservation_id: int | None
    status: str | None
    released_amount: Decimal | None
    available: Decimal | None
    replayed: bool


@dataclass(frozen=True)
class ConvertResult:
    code: str
    reservation_id: int | None
    status: str | None
    ledger_entry_id: int | None
    debited_amount: Decimal | None
    released_amount: Decimal | None
    due_date: dt.date | None
    available: Decimal | None
    replayed: bool
    remaining_amount: Decimal | None  # still held after it (v1.2); 0 once the hold has ended


@dataclass(frozen=True)
class AmendResult:
    """amend_reservation(): the order's total before and after, and what it still holds."""

    code: str
    reservation_id: int | None
    status: str | None
    amount: Decimal | None
    previous_amount: Decimal | None
    remaining_amount: Decimal | None
    available: Decimal | None
    shortfall: Decimal | None
    replayed: bool


@dataclass(frozen=True)
class EntryResult:
    """record_payment, reverse_debit and adjust_balance."""

    code: str
    ledger_entry_id: int | None
    outstanding: Decimal | None
    available: Decimal | None
    replayed: bool


@dataclass(frozen=True)
class Finding:
    """One row of reconcile(): something that does not add up."""

    check_name: str
    wholesaler_id: str
    retailer_id: str
    expected: Decimal | None
    actual: Decimal | None
    detail: str


@dataclass(frozen=True)
class StatementLine:
    """One row of statement(); the first is the OPENING balance (entry_id None)."""

    entry_id: int | None
    created_at: dt.datetime
    entry_type: str
    ref: str | None
    memo: str | None
    due_date: dt.date | None
    amount: Decimal
    balance: Decimal


@dataclass(frozen=True)
class OverduePolicyResult:
    code: str
    grace_days: int | None
    max_overdue_amount: Decimal | None


@dataclass(frozen=True)
class ReservationInfo:
    """get_reservation(): one hold with its effective status."""

    code: str
    reservation_id: int | None
    status: str | None
    amount: Decimal | None
    expires_at: dt.datetime | None
    created_at: dt.datetime | None
    released_at: dt.datetime | None
    release_reason: str | None
    converted_at: dt.datetime | None
    converted_amount: Decimal | None
    released_amount: Decimal | None
    ledger_entry_id: int | None  # the latest DEBIT's (v1.2: one per shipment)
    due_date: dt.date | None
    remaining_amount: Decimal | None  # amount less what was shipped while active (v1.2); else 0


@dataclass(frozen=True)
class ReservationRow:
    """One row of list_reservations()."""

    reservation_id: int
    order_ref: str
    status: str
    amount: Decimal
    expires_at: dt.datetime | None
    created_at: dt.datetime
    remaining_amount: Decimal | None


@dataclass(frozen=True)
class LineRow:
    """One row of list_lines()."""

    retailer_id: str
    line_id: int
    status: str
    currency: str
    credit_limit: Decimal
    reserved: Decimal
    outstanding: Decimal
    available: Decimal
    past_due: Decimal


@dataclass(frozen=True)
class AgingRow:
    """One row of aging(): a line's unpaid items by days past due as of a day."""

    wholesaler_id: str
    retailer_id: str
    currency: str
    not_due: Decimal
    days_1_30: Decimal
    days_31_60: Decimal
    days_61_90: Decimal
    days_over_90: Decimal
    unapplied_credit: Decimal
    outstanding: Decimal
    oldest_unpaid_due_date: dt.date | None


# The keys of Event.data that hold money: strings with 2 decimals in the
# feed, Decimal here. Settlements are a list of objects with an amount.
EVENT_MONEY = frozenset({"available", "outstanding", "released_amount", "previous_limit", "max_overdue_amount",
                         "reserved", "temporary_limit", "previous_amount", "remaining_amount"})


def event_data(data: dict) -> dict:
    """An event's data with its money as Decimal."""
    out = {}
    for key, value in data.items():
        if key in EVENT_MONEY and value is not None:
            value = Decimal(value)
        elif key == "settlements":
            value = [{**s, "amount": Decimal(s["amount"])} for s in value]
        out[key] = value
    return out


@dataclass(frozen=True)
class Event:
    """One event of the feed (events_after; SPEC "Events"). data holds the
    kind's figures: money as Decimal, moments (effective_at, expires_at,
    valid_until) as ISO 8601 strings, as the feed's JSON has them."""

    event_id: int
    kind: str
    wholesaler_id: str
    retailer_id: str
    ref: str | None
    amount: Decimal | None
    data: dict
    created_at: dt.datetime

    def __post_init__(self):
        object.__setattr__(self, "data", event_data(self.data))


# Bulk calls: one row per item, in item order; `item` counts from 1.


@dataclass(frozen=True)
class ReserveBatchItem:
    """One item of reserve_credit_batch(): what reserve_credit would have returned."""

    item: int
    code: str
    reservation_id: int | None
    status: str | None
    amount: Decimal | None
    available: Decimal | None
    shortfall: Decimal | None
    replayed: bool


@dataclass(frozen=True)
class ConvertBatchItem:
    """One item of convert_to_debit_batch(): what convert_to_debit would have returned."""

    item: int
    code: str
    reservation_id: int | None
    status: str | None
    ledger_entry_id: int | None
    debited_amount: Decimal | None
    released_amount: Decimal | None
    due_date: dt.date | None
    available: Decimal | None
    replayed: bool
    remaining_amount: Decimal | None


@dataclass(frozen=True)
class PaymentBatchItem:
    """One item of record_payment_batch(): what record_payment would have returned."""

    item: int
    code: str
    ledger_entry_id: int | None
    outstanding: Decimal | None
    available: Decimal | None
    replayed: bool
