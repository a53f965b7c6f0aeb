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


class BelowConvertedAmount(CreditRefused):
    """An amendment would cut the order below what was already shipped
    (its converted_amount); the hold is unchanged."""

    code = "below_converted_amount"


class DebitNotFound(CreditRefused):
    """No DEBIT exists on the line under this ref (an order_ref's final
    conversion or a shipment_ref): reverse_debit, or a payment's applies_to."""

    code = "debit_not_found"


class ExceedsDebitAmount(CreditRefused):
    """The reversals of a DEBIT would exceed it."""

    code = "exceeds_debit_amount"


class IdempotencyConflict(CreditRefused):
    """The key was used before with another amount, or with other terms (a line
    opened with other terms, an amend_ref used for another order, a payment_ref
    that named other invoices): exists_with_different_amount or
    exists_with_different_terms, in ``result.code``."""

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


class OutcomeUnknown(CreditError):
    """The server answered, but its answer does not prove the call's commit is
    durable as configured: with a synchronous standby, the wait for the
    standby's confirmation was cancelled (``pg_cancel_backend``, a client-side
    cancel, ...) and the server reported the commit as done locally with a
    WARNING (SQLSTATE 01000, "canceling wait for synchronous replication").
    The call may be on the primary only, and gone if the primary is lost now.

    Not retried by the client: the cancel was someone's decision to stop
    waiting, and a retry on the same primary would wait for the same standby
    again. Call again with the same idempotency key once a server answers (the
    standby is back, or it was promoted): that call waits for the standby like
    the first one, so its answer, a replay or the call done once, is durable.

    ``function`` is the SQL function, ``key_name`` and ``key`` the idempotency
    key (``order_ref``, ``payment_ref``, ...; a list for a bulk call; None for a
    call that is idempotent by its arguments alone, such as ``block_line``),
    ``params`` every argument of the call, ``notice`` the server's warning."""

    def __init__(self, function: str, key_name: str | None, params: dict, notice: str):
        self.function = function
        self.key_name = key_name
        self.key = params.get(key_name) if key_name else None
        self.params = params
        self.notice = notice
        line = (params.get("wholesaler_id"), params.get("retailer_id"))
        on = f" on line {line}" if None not in line else ""
        key = f" {key_name}={self.key!r}" if key_name else ""
        again = f"with the same {key_name}" if key_name else "with the same arguments"
        super().__init__(f"{function}{key}{on}: outcome unknown, the commit is not confirmed durable "
                         f"({notice}); call again {again} once a server answers")


_BY_CODE: dict[str, type[CreditRefused]] = {
    cls.code: cls
    for cls in (InsufficientCredit, LineBlocked, Overdue, LineNotFound, ReservationNotFound,
                ReservationReleased, ReservationConverted, ReservationExpired,
                ExceedsReservationAmount, BelowConvertedAmount, DebitNotFound, ExceedsDebitAmount,
                IdempotencyConflict)
}
_BY_CODE["exists_with_different_terms"] = IdempotencyConflict

# lock_not_available, deadlock, serialization failure, statement timeout or
# cancel, server shutdown / terminated backend, cannot connect now.
_RETRYABLE = {"55P03", "40P01", "40001", "57014", "57P01", "57P02", "57P03"}


def refusal(result: Any) -> CreditRefused:
    """The exception for a non-ok result."""
    return _BY_CODE.get(result.code, CreditRefused)(result)


def is_stale_plan(exc: psycopg.Error) -> bool:
    """A statement this connection prepared before a migration changed the shape
    of what it returns (a result type gained a column). PostgreSQL refuses it
    before running anything; prepared again, it runs."""
    return exc.sqlstate == "0A000" and "cached plan must not change result type" in str(exc)


def is_retryable(exc: psycopg.Error) -> bool:
    """Worth retrying with the same key: the statement did not take effect, or
    its commit may have, and the key makes a second attempt harmless."""
    state = exc.sqlstate
    if state is None:
        # No SQLSTATE: the connection broke (server gone, network, killed backend).
        return isinstance(exc, psycopg.OperationalError)
    return state in _RETRYABLE or state.startswith("08") or is_stale_plan(exc)


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


# PostgreSQL's warning for a commit done locally whose wait for a synchronous
# standby was cancelled. Matched by severity and SQLSTATE, not by its text,
# which servers with another lc_messages translate: pgcredit's functions
# raise no warnings, so no other WARNING 01000 comes with a call's answer
# (test_no_false_ack.py's test_no_function_raises_a_warning keeps it so).
def unconfirmed_commit(diag: psycopg.errors.Diagnostic) -> bool:
    """Whether a notice received with a call's answer says its commit is not confirmed."""
    return (diag.severity_nonlocalized or diag.severity) == "WARNING" and diag.sqlstate == "01000"
