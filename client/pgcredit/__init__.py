"""pgcredit: trade credit for B2B ordering, enforced inside PostgreSQL.

The rules live in the SQL functions of schema ``credit``; this package is a thin
psycopg 3 client for them, plus ``migrate`` and the ``pgcredit`` command."""

from .client import AsyncCreditClient, CreditClient, Retry
from .errors import (
    BelowConvertedAmount, CreditBusy, CreditDatabaseError, CreditError, CreditRefused, DebitNotFound, EventsPruned,
    ExceedsDebitAmount, ExceedsReservationAmount, IdempotencyConflict, InsufficientCredit, InvalidInput, LineBlocked,
    LineNotFound, OutcomeUnknown, Overdue, ReservationConverted, ReservationExpired, ReservationNotFound,
    ReservationReleased,
)
from .migrate import migrate
from .results import (
    AgingRow, AmendResult, AvailableResult, CanReserveResult, ConvertBatchItem, ConvertResult, EntryResult,
    Event, Finding, LimitResult, LineRow, OpenLineResult, OverduePolicyResult, PaymentBatchItem, ReleaseResult,
    ReservationInfo, ReservationRow, ReserveBatchItem, ReserveResult, StatementLine, StatusResult,
)

__all__ = [
    "AsyncCreditClient", "CreditClient", "Retry", "migrate",
    "BelowConvertedAmount", "CreditBusy", "CreditDatabaseError", "CreditError", "CreditRefused", "DebitNotFound",
    "ExceedsDebitAmount", "ExceedsReservationAmount", "IdempotencyConflict", "InsufficientCredit",
    "InvalidInput", "LineBlocked", "LineNotFound", "OutcomeUnknown", "Overdue", "ReservationConverted",
    "ReservationExpired", "ReservationNotFound", "ReservationReleased", "EventsPruned",
    "AgingRow", "AmendResult", "AvailableResult", "CanReserveResult", "ConvertResult", "EntryResult",
    "Event", "Finding", "LimitResult", "LineRow", "OpenLineResult", "OverduePolicyResult", "ReleaseResult", "ReservationInfo",
    "ReservationRow", "ReserveResult", "StatementLine", "StatusResult",
    "ConvertBatchItem", "PaymentBatchItem", "ReserveBatchItem",
]
