"""Every statement the client sends, in one place: named parameters, explicit casts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import results as r


@dataclass(frozen=True)
class Query:
    sql: str
    result: Any  # dataclass for rows, int for a scalar
    many: bool = False
    # The argument that is the call's idempotency key, named in OutcomeUnknown.
    # None: the call has none (calling it again with the same arguments is harmless).
    key: str | None = None


QUERIES: dict[str, Query] = {
    "open_line": Query(
        "SELECT * FROM credit.open_line(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(credit_limit)s::numeric, %(currency)s::text, %(payment_terms_days)s::integer)",
        r.OpenLineResult),
    "set_credit_limit": Query(
        "SELECT * FROM credit.set_credit_limit(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(credit_limit)s::numeric, %(reason)s::text, %(valid_until)s::timestamptz)",
        r.LimitResult),
    "set_overdue_policy": Query(
        "SELECT * FROM credit.set_overdue_policy(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(grace_days)s::integer, %(max_overdue_amount)s::numeric, %(reason)s::text)",
        r.OverduePolicyResult),
    "block_line": Query(
        "SELECT * FROM credit.block_line(%(wholesaler_id)s::text, %(retailer_id)s::text, %(reason)s::text)",
        r.StatusResult),
    "unblock_line": Query(
        "SELECT * FROM credit.unblock_line(%(wholesaler_id)s::text, %(retailer_id)s::text, %(reason)s::text)",
        r.StatusResult),
    "get_available": Query(
        "SELECT * FROM credit.get_available(%(wholesaler_id)s::text, %(retailer_id)s::text)",
        r.AvailableResult),
    "can_reserve": Query(
        "SELECT * FROM credit.can_reserve(%(wholesaler_id)s::text, %(retailer_id)s::text, %(amount)s::numeric)",
        r.CanReserveResult),
    "reserve_credit": Query(
        "SELECT * FROM credit.reserve_credit(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(order_ref)s::text, %(amount)s::numeric, %(expires_in)s::interval)",
        r.ReserveResult, key="order_ref"),
    "release_reservation": Query(
        "SELECT * FROM credit.release_reservation(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(order_ref)s::text, %(reason)s::text)",
        r.ReleaseResult, key="order_ref"),
    "convert_to_debit": Query(
        "SELECT * FROM credit.convert_to_debit(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(order_ref)s::text, %(amount)s::numeric, %(due_date)s::date, %(shipment_ref)s::text)",
        r.ConvertResult, key="order_ref"),
    "amend_reservation": Query(
        "SELECT * FROM credit.amend_reservation(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(order_ref)s::text, %(amount)s::numeric, %(amend_ref)s::text)",
        r.AmendResult, key="amend_ref"),
    "record_payment": Query(
        "SELECT * FROM credit.record_payment(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(payment_ref)s::text, %(amount)s::numeric, %(applies_to)s::text[])",
        r.EntryResult, key="payment_ref"),
    "reverse_debit": Query(
        "SELECT * FROM credit.reverse_debit(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(order_ref)s::text, %(reversal_ref)s::text, %(amount)s::numeric, %(reason)s::text)",
        r.EntryResult, key="reversal_ref"),
    "adjust_balance": Query(
        "SELECT * FROM credit.adjust_balance(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(adjustment_ref)s::text, %(amount)s::numeric, %(reason)s::text)",
        r.EntryResult, key="adjustment_ref"),
    "get_reservation": Query(
        "SELECT * FROM credit.get_reservation(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(order_ref)s::text)",
        r.ReservationInfo),
    "list_reservations": Query(
        "SELECT * FROM credit.list_reservations(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(status)s::text, %(after_reservation_id)s::bigint, %(max_rows)s::integer)",
        r.ReservationRow, many=True),
    "list_lines": Query(
        "SELECT * FROM credit.list_lines(%(wholesaler_id)s::text, %(after_retailer_id)s::text,"
        " %(max_rows)s::integer)",
        r.LineRow, many=True),
    "aging": Query(
        # as_of None: the server's today, as the SQL default gives it.
        "SELECT * FROM credit.aging(coalesce(%(as_of)s::date, current_date), %(wholesaler_id)s::text,"
        " %(retailer_id)s::text)",
        r.AgingRow, many=True),
    "expire_reservations": Query(
        "SELECT credit.expire_reservations(%(max_count)s::integer)",
        int),
    "reconcile": Query(
        "SELECT * FROM credit.reconcile()",
        r.Finding, many=True),
    "statement": Query(
        "SELECT * FROM credit.statement(%(wholesaler_id)s::text, %(retailer_id)s::text,"
        " %(from_date)s::date, %(to_date)s::date)",
        r.StatementLine, many=True),
    "events_after": Query(
        "SELECT * FROM credit.events_after(%(after_event_id)s::bigint, %(max_rows)s::integer,"
        " %(wholesaler_id)s::text)",
        r.Event, many=True),
    # Through a partitioned deployment's proxy: one feed per partition.
    "events_after_partition": Query(
        "SELECT * FROM credit.events_after(%(after_event_id)s::bigint, %(max_rows)s::integer,"
        " %(wholesaler_id)s::text, %(partition)s::integer)",
        r.Event, many=True),
    # Bulk calls: one array per argument, one row per item.
    "reserve_credit_batch": Query(
        "SELECT * FROM credit.reserve_credit_batch(%(wholesaler_ids)s::text[], %(retailer_ids)s::text[],"
        " %(order_refs)s::text[], %(amounts)s::numeric[], %(expires_in)s::interval)",
        r.ReserveBatchItem, many=True, key="order_refs"),
    "convert_to_debit_batch": Query(
        "SELECT * FROM credit.convert_to_debit_batch(%(wholesaler_ids)s::text[], %(retailer_ids)s::text[],"
        " %(order_refs)s::text[], %(amounts)s::numeric[], %(shipment_refs)s::text[])",
        r.ConvertBatchItem, many=True, key="order_refs"),
    "record_payment_batch": Query(
        "SELECT * FROM credit.record_payment_batch(%(wholesaler_ids)s::text[], %(retailer_ids)s::text[],"
        " %(payment_refs)s::text[], %(amounts)s::numeric[])",
        r.PaymentBatchItem, many=True, key="payment_refs"),
}


def _named_columns(query: Query) -> Query:
    """SELECT * becomes SELECT of the result type's fields. A server's result
    types may gain trailing columns (SPEC v1.2); a statement that names its
    columns reads the same through such a migration, and its prepared form
    (psycopg prepares a statement used often) stays valid, where SELECT *
    would fail with "cached plan must not change result type"."""
    if not dataclasses.is_dataclass(query.result) or not query.sql.startswith("SELECT * FROM "):
        return query
    columns = ", ".join(f.name for f in dataclasses.fields(query.result))
    return dataclasses.replace(query, sql=f"SELECT {columns} FROM " + query.sql.removeprefix("SELECT * FROM "))


QUERIES = {name: _named_columns(q) for name, q in QUERIES.items()}
