"""Exceptions, and the one place where result codes and SQLSTATEs become them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg


class CreditError(Exception):
    """Base of every error pgcredit raises."""


class CreditRefused(CreditError):
    """The database answered with a non-ok result code; ``result`` holds the row."""

    code = ""

    def __init__(self, result: Any):
        self.result = result
        super().__init__(f"{result.code}: {result}")


class InsufficientCredit(CreditRefused):
    """The line has less available than the amount asked for."""

    code = "insufficient_credit"

    @property
    def available(self):
        return self.result.available

    @property
    def shortfall(self):
        return self.result.shortfall


class LineBlocked(CreditRefused):
    """The line is blocked: it refuses new reservations."""

    code = "line_blocked"


class Overdue(CreditRefused):
    """The line's overdue policy refuses new reservations: unpaid items past
    their due date and grace period exceed what the policy tolerates."""

    code = "overdue"


class LineNotFound(CreditRefused):
    """No line exists for this (wholesaler_id, retailer_id)."""

    code = "line_not_found"


class ReservationNotFound(CreditRefused):
    """No hold exists for this order_ref on the line."""

    code = "reservation_not_found"


class ReservationReleased(CreditRefused):
    """The hold was released; it can no longer be converted."""

    code = "reservation_released"


class ReservationConverted(CreditRefused):
    """The hold was converted into a DEBIT; it can no longer be released."""

    code = "reservation_converted"


class ReservationExpired(CreditRefused):
    """The hold expired before it was converted or released."""

    code = "reservation_expired"


class ExceedsReservationAmount(CreditRefused):
    """A conversion asked for more than the hold."""

    code = "exceeds_reservation_amount"


class DebitNotFound(CreditRefused):
    """No DEBIT exists for this order_ref on the line."""

    code = "debit_not_found"


class ExceedsDebitAmount(CreditRefused):
    """The reversals of a DEBIT would exceed it."""

    code = "exceeds_debit_amount"


class IdempotencyConflict(CreditRefused):
    """The key was used before with another amount (or the line with other terms)."""

    code = "exists_with_different_amount"


class InvalidInput(CreditError, ValueError):
    """The database refused an argument (SQLSTATE class 22); nothing was written.

    The message is the server's and names the argument."""

    def __init__(self, message: str, sqlstate: str | None):
        self.sqlstate = sqlstate
        super().__init__(message)


class CreditDatabaseError(CreditError):
    """Any other database error (permissions, missing schema, ...); the psycopg
    error is chained as ``__cause__``."""

    def __init__(self, message: str, sqlstate: str | None):
        self.sqlstate = sqlstate
        super().__init__(message)


class EventsPruned(CreditError):
    """events_after: the events after this reader's cursor were pruned
    (prune_events) before it read them. ``pruned_through`` is the largest
    event_id removed: rebuild what the reader keeps from the API's reads, then
    resume after it."""

    def __init__(self, message: str, pruned_through: int | None):
        self.pruned_through = pruned_through
        super().__init__(message)


class CreditBusy(CreditError):
    """A retryable failure (lock timeout, deadlock, serialization failure, lost
    connection) persisted through every retry. Retrying later with the same
    idempotency key is safe."""


_BY_CODE: dict[str, type[CreditRefused]] = {
    cls.code: cls
    for cls in (InsufficientCredit, LineBlocked, Overdue, LineNotFound, ReservationNotFound,
                ReservationReleased, ReservationConverted, ReservationExpired,
                ExceedsReservationAmount, DebitNotFound, ExceedsDebitAmount, IdempotencyConflict)
}
_BY_CODE["exists_with_different_terms"] = IdempotencyConflict

# lock_not_available, deadlock, serialization failure, statement timeout or
# cancel, server shutdown / terminated backend, cannot connect now.
_RETRYABLE = {"55P03", "40P01", "40001", "57014", "57P01", "57P02", "57P03"}


def refusal(result: Any) -> CreditRefused:
    """The exception for a non-ok result."""
    return _BY_CODE.get(result.code, CreditRefused)(result)


def is_retryable(exc: psycopg.Error) -> bool:
    """Worth retrying with the same key: the statement did not take effect, or
    its commit may have, and the key makes a second attempt harmless."""
    state = exc.sqlstate
    if state is None:
        # No SQLSTATE: the connection broke (server gone, network, killed backend).
        return isinstance(exc, psycopg.OperationalError)
    return state in _RETRYABLE or state.startswith("08")


@dataclass(frozen=True)
class Missing:
    """The result behind LineNotFound from a read that returns a set
    (statement, list_reservations): the server raised P0002 line_not_found."""

    code: str
    message: str


def translate(exc: psycopg.Error) -> CreditError:
    """The pgcredit exception for a psycopg error that will not be retried."""
    message = exc.diag.message_primary or str(exc)
    if exc.sqlstate and exc.sqlstate.startswith("22"):
        return InvalidInput(message, exc.sqlstate)
    if exc.sqlstate == "P0002" and message.startswith("line_not_found"):
        return LineNotFound(Missing("line_not_found", message))
    if exc.sqlstate == "55000" and message.startswith("events_pruned"):
        found = re.search(r"pruned_through=(\d+)", exc.diag.message_detail or "")
        return EventsPruned(message, int(found.group(1)) if found else None)
    return CreditDatabaseError(str(exc).strip(), exc.sqlstate)
