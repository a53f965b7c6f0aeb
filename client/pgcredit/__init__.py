"""pgcredit: trade credit for B2B ordering, enforced inside PostgreSQL.

The rules live in the SQL functions of schema ``credit``; this package is a thin
psycopg 3 client for them, plus ``migrate`` and the ``pgcredit`` command."""

from .client import AsyncCreditClient, CreditClient, Retry
from .errors import (
    CreditBusy, CreditDatabaseError, CreditError, CreditRefused, DebitNotFound, ExceedsDebitAmount,
    ExceedsReservationAmount, IdempotencyConflict, InsufficientCredit, InvalidInput, LineBlocked,
    LineNotFound, ReservationConverted, ReservationExpired, ReservationNotFound, ReservationReleased,
)
from .migrate import migrate
from .results import (
    AvailableResult, CanReserveResult, ConvertResult, EntryResult, Finding, LimitResult,
    OpenLineResult, ReleaseResult, ReserveResult, StatementLine, StatusResult,
)

__all__ = [
    "AsyncCreditClient", "CreditClient", "Retry", "migrate",
    "CreditBusy", "CreditDatabaseError", "CreditError", "CreditRefused", "DebitNotFound",
    "ExceedsDebitAmount", "ExceedsReservationAmount", "IdempotencyConflict", "InsufficientCredit",
    "InvalidInput", "LineBlocked", "LineNotFound", "ReservationConverted", "ReservationExpired",
    "ReservationNotFound", "ReservationReleased",
    "AvailableResult", "CanReserveResult", "ConvertResult", "EntryResult", "Finding", "LimitResult",
    "OpenLineResult", "ReleaseResult", "ReserveResult", "StatementLine", "StatusResult",
]
