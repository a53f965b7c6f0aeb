"""CreditClient and AsyncCreditClient: one method per SQL function, same names.

The methods are written once, in ``_Api``; each returns ``self._call(...)``,
which is a result in the sync client and an awaitable of one in the async
client. Retries, error translation and result building are shared too; only
the few lines that touch the connection exist twice.

An answer counts only if it proves the commit: while a call and its commit
run, the client listens for the server's notices, and the warning of a commit
whose wait for a synchronous standby was cancelled turns the answer into
OutcomeUnknown (errors.unconfirmed_commit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from . import errors
from .queries import QUERIES, Query
from .results import Event


@dataclass(frozen=True)
class Retry:
    """Retry policy for lock timeouts, deadlocks, serialization failures and lost
    connections. Each retry repeats the call with the same idempotency key, after a
    full-jitter exponential backoff."""

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0
    # Called as on_retry(function_name, attempt, error) before each retry: for logs and metrics.
    on_retry: Callable[[str, int, Exception], None] | None = None

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))


def _money(value: Any, name: str) -> Any:
    if isinstance(value, float):
        raise TypeError(f"{name} must be a Decimal or an int, not a float: money is never float")
    return value


def _columns(items: Any, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, list]:
    """A bulk call's items (tuples in argument order, or dicts by argument
    name) as one list per argument, named in the plural as the SQL function
    names its arrays. Money goes through _money, so a float is refused."""
    columns: dict[str, list] = {f: [] for f in fields}
    for n, item in enumerate(items, start=1):
        if isinstance(item, dict):
            unknown = set(item) - set(fields)
            if unknown:
                raise TypeError(f"item {n}: unknown field(s) {sorted(unknown)}; expected {list(fields)}")
            values = [item[f] if f in item or f not in optional else None for f in fields]
        else:
            values = list(item)
            if not len(fields) - len(optional) <= len(values) <= len(fields):
                raise TypeError(f"item {n}: expected {list(fields)}, got {len(values)} value(s)")
            values += [None] * (len(fields) - len(values))
        for f, v in zip(fields, values):
            if f == "amount" and isinstance(_money(v, f"item {n}: amount"), int):
                v = Decimal(v)  # one array of one type: psycopg dumps a list by its first element
            columns[f].append(v)
    return {("amounts" if f == "amount" else f + "s"): column for f, column in columns.items()}


_FIELDS: dict[type, frozenset[str]] = {}


def _build(cls: type, row: dict) -> Any:
    """A result from a row. A later release may add columns at the end of a
    result type: a column this client does not know (the schema is migrated
    before the applications are upgraded) is left out rather than failing the call."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    if len(row) == len(names):
        return cls(**row)
    return cls(**{k: v for k, v in row.items() if k in names})


def _finish(query: Query, rows: list[dict], check: bool) -> Any:
    if query.many:
        return [_build(query.result, row) for row in rows]
    (row,) = rows
    if query.result is int:
        return next(iter(row.values()))
    result = _build(query.result, row)
    if check and result.code != "ok":
        raise errors.refusal(result)
    return result


def _unconfirmed(name: str, params: dict, notices: list[str]) -> errors.OutcomeUnknown:
    return errors.OutcomeUnknown(name, QUERIES[name].key, params, notices[0])


def _after_failure(retry: Retry, name: str, attempt: int, exc: psycopg.Error, retryable: bool,
                   metrics: Any = None) -> float:
    """Raises what the caller should see, or returns how long to wait before
    the next attempt with the same key."""
    if not (retryable and errors.is_retryable(exc)):
        raise errors.translate(exc) from exc
    if attempt + 1 == retry.attempts:
        if metrics is not None:
            metrics.gave_up(name)
        raise errors.CreditBusy(f"{name}: gave up after {attempt + 1} attempts: {exc}") from exc
    if metrics is not None:
        metrics.retried(name, exc)
    if retry.on_retry:
        retry.on_retry(name, attempt, exc)
    return 0.0 if errors.is_stale_plan(exc) else retry.delay(attempt)


def _forget_plans(conn: Any, exc: psycopg.Error) -> bool:
    """After a stale plan outside a transaction, have this connection prepare
    its statements again: psycopg forgets its own on DEALLOCATE ALL. (Inside a
    transaction the ROLLBACK does it.) True when a statement must be sent."""
    return errors.is_stale_plan(exc) and conn.info.transaction_status == TransactionStatus.IDLE


class _Waits:
    """How long events() waits before asking for more: not at all after a full
    page (more may be waiting), a short pause after a partial one (the feed is
    caught up; let a few more commit), and after empty pages a pause that
    doubles up to max_wait, so that an idle feed costs a reader at most a few
    calls per second. There is no wake-up signal to wait on instead: writers
    send none (a NOTIFY in every transaction would serialise their commits),
    and a reader's own call is what advances the feed's horizon past newly
    committed events."""

    SHORT = 0.02

    def __init__(self, max_wait: float):
        if not max_wait > 0:
            raise ValueError(f"max_wait must be a positive number of seconds, got {max_wait!r}")
        self.max_wait, self.idle = max_wait, self.SHORT

    def after(self, rows: int, batch: int) -> float:
        if rows:
            self.idle = self.SHORT
            return 0.0 if rows == batch else min(self.SHORT, self.max_wait)
        wait, self.idle = self.idle, min(self.idle * 2, self.max_wait)
        return min(wait, self.max_wait)


def _metrics(metrics: Any) -> Any:
    """None costs nothing (pgcredit.metrics is not even imported); anything
    else is resolved by pgcredit.metrics.resolve."""
    if metrics is None:
        return None
    from .metrics import resolve

    return resolve(metrics)


class _Api:
    """The public API. Arguments are those of the SQL functions; money is Decimal
    (or int) in and Decimal out. A non-ok code raises the matching
    ``CreditRefused`` subclass unless ``check=False``."""

    @staticmethod
    @contextmanager
    def _watch(conn):
        """Collects, while the block runs, the notices on conn that say a commit
        is not confirmed (errors.unconfirmed_commit). The block must include the
        commit: the warning comes with it. A handler per call, so a connection
        shared by threads attributes a warning to every call in flight on it at
        that moment at worst (an unknown outcome too many, never too few)."""
        seen: list = []

        def handler(diag):
            if errors.unconfirmed_commit(diag):
                # Read now: psycopg frees the notice when the handler returns.
                seen.append(f"{diag.severity_nonlocalized or diag.severity} {diag.sqlstate}: {diag.message_primary}")

        conn.add_notice_handler(handler)
        try:
            yield seen
        finally:
            conn.remove_notice_handler(handler)

    def open_line(self, wholesaler_id: str, retailer_id: str, credit_limit: Decimal,
                  currency: str = "INR", payment_terms_days: int = 30, *, check: bool = True):
        return self._call("open_line", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id,
            credit_limit=_money(credit_limit, "credit_limit"), currency=currency,
            payment_terms_days=payment_terms_days))

    def set_credit_limit(self, wholesaler_id: str, retailer_id: str, credit_limit: Decimal,
                         reason: str, valid_until: dt.datetime | None = None, *, check: bool = True):
        """With valid_until (an aware datetime in the future) the limit is temporary."""
        return self._call("set_credit_limit", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id,
            credit_limit=_money(credit_limit, "credit_limit"), reason=reason, valid_until=valid_until))

    def set_overdue_policy(self, wholesaler_id: str, retailer_id: str, grace_days: int | None,
                           max_overdue_amount: Decimal = Decimal(0), reason: str | None = None,
                           *, check: bool = True):
        """grace_days None removes the policy."""
        return self._call("set_overdue_policy", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, grace_days=grace_days,
            max_overdue_amount=_money(max_overdue_amount, "max_overdue_amount"), reason=reason))

    def block_line(self, wholesaler_id: str, retailer_id: str, reason: str, *, check: bool = True):
        return self._call("block_line", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, reason=reason))

    def unblock_line(self, wholesaler_id: str, retailer_id: str, reason: str, *, check: bool = True):
        return self._call("unblock_line", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, reason=reason))

    def get_available(self, wholesaler_id: str, retailer_id: str, *, check: bool = True):
        return self._call("get_available", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id))

    def can_reserve(self, wholesaler_id: str, retailer_id: str, amount: Decimal, *, check: bool = False):
        """A question, so its refusals are answers: check defaults to False here."""
        return self._call("can_reserve", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, amount=_money(amount, "amount")))

    def reserve_credit(self, wholesaler_id: str, retailer_id: str, order_ref: str, amount: Decimal,
                       expires_in: dt.timedelta | None = None, *, check: bool = True):
        return self._call("reserve_credit", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, order_ref=order_ref,
            amount=_money(amount, "amount"), expires_in=expires_in))

    def release_reservation(self, wholesaler_id: str, retailer_id: str, order_ref: str,
                            reason: str | None = None, *, check: bool = True):
        return self._call("release_reservation", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, order_ref=order_ref, reason=reason))

    def amend_reservation(self, wholesaler_id: str, retailer_id: str, order_ref: str, amount: Decimal,
                          amend_ref: str, *, check: bool = True):
        """Sets the order's total to amount. A raise is checked like a reservation
        (InsufficientCredit, LineBlocked, Overdue); a cut always succeeds, down to
        what was shipped (BelowConvertedAmount below it). amend_ref is the key."""
        return self._call("amend_reservation", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, order_ref=order_ref,
            amount=_money(amount, "amount"), amend_ref=amend_ref))

    def convert_to_debit(self, wholesaler_id: str, retailer_id: str, order_ref: str,
                         amount: Decimal | None = None, due_date: dt.date | None = None,
                         shipment_ref: str | None = None, *, check: bool = True):
        """With shipment_ref: one shipment (amount None: all that remains), the rest stays
        held. Without: the final conversion, which releases the rest."""
        return self._call("convert_to_debit", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, order_ref=order_ref,
            amount=_money(amount, "amount"), due_date=due_date, shipment_ref=shipment_ref))

    def record_payment(self, wholesaler_id: str, retailer_id: str, payment_ref: str, amount: Decimal,
                       applies_to: Sequence[str] | None = None, *, check: bool = True):
        """applies_to: the DEBIT refs (order_refs, shipment_refs) the payment pays, in
        that order; what is left is applied oldest due first."""
        if isinstance(applies_to, str):
            raise TypeError("applies_to must be a sequence of refs, not one string")
        return self._call("record_payment", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, payment_ref=payment_ref,
            amount=_money(amount, "amount"), applies_to=None if applies_to is None else list(applies_to)))

    def reverse_debit(self, wholesaler_id: str, retailer_id: str, order_ref: str, reversal_ref: str,
                      amount: Decimal, reason: str, *, check: bool = True):
        return self._call("reverse_debit", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, order_ref=order_ref,
            reversal_ref=reversal_ref, amount=_money(amount, "amount"), reason=reason))

    def adjust_balance(self, wholesaler_id: str, retailer_id: str, adjustment_ref: str, amount: Decimal,
                       reason: str, *, check: bool = True):
        return self._call("adjust_balance", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, adjustment_ref=adjustment_ref,
            amount=_money(amount, "amount"), reason=reason))

    # Bulk calls (docs/SQL-REFERENCE.md): one round trip and one commit for many
    # items. Items are tuples in the single call's argument order or dicts by
    # argument name; the result is a list with one row per item, in item
    # order, and a refusal is a row with its code, never an exception. Bad
    # input anywhere raises InvalidInput naming the element (e.g. amounts[7])
    # and nothing is written. A lock timeout or deadlock retries the whole
    # call with the same keys: items already done then replay.

    def reserve_credit_batch(self, items, expires_in: dt.timedelta | None = None):
        """items: (wholesaler_id, retailer_id, order_ref, amount); expires_in applies to every hold."""
        return self._call("reserve_credit_batch", False, dict(
            **_columns(items, ("wholesaler_id", "retailer_id", "order_ref", "amount")), expires_in=expires_in))

    def convert_to_debit_batch(self, items):
        """items: (wholesaler_id, retailer_id, order_ref[, amount[, shipment_ref]]); no amount, or
        None, converts all that remains; a shipment_ref books a shipment, none the final
        conversion. Each debit is due after its line's payment terms."""
        return self._call("convert_to_debit_batch", False, _columns(
            items, ("wholesaler_id", "retailer_id", "order_ref", "amount", "shipment_ref"),
            optional=("amount", "shipment_ref")))

    def record_payment_batch(self, items):
        """items: (wholesaler_id, retailer_id, payment_ref, amount)."""
        return self._call("record_payment_batch", False, _columns(
            items, ("wholesaler_id", "retailer_id", "payment_ref", "amount")))

    def get_reservation(self, wholesaler_id: str, retailer_id: str, order_ref: str, *, check: bool = True):
        return self._call("get_reservation", check, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, order_ref=order_ref))

    def list_reservations(self, wholesaler_id: str, retailer_id: str, status: str | None = "active",
                          after_reservation_id: int | None = None, max_rows: int = 100):
        """A page of holds in ascending reservation_id; pass the last one seen as
        after_reservation_id for the next page. status None lists every status."""
        return self._call("list_reservations", False, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, status=status,
            after_reservation_id=after_reservation_id, max_rows=max_rows))

    def list_lines(self, wholesaler_id: str, after_retailer_id: str | None = None, max_rows: int = 100):
        return self._call("list_lines", False, dict(
            wholesaler_id=wholesaler_id, after_retailer_id=after_retailer_id, max_rows=max_rows))

    def aging(self, as_of: dt.date | None = None, wholesaler_id: str | None = None,
              retailer_id: str | None = None):
        """Receivables aging as of the end of as_of (default: today, the server's)."""
        return self._call("aging", False, dict(as_of=as_of, wholesaler_id=wholesaler_id, retailer_id=retailer_id))

    def expire_reservations(self, max_count: int = 1000):
        """How many expired holds this call marked 'expired'."""
        return self._call("expire_reservations", False, dict(max_count=max_count))

    def reconcile(self):
        """The findings of credit.reconcile(); an empty list means healthy."""
        return self._call("reconcile", False, {})

    def statement(self, wholesaler_id: str, retailer_id: str, from_date: dt.date, to_date: dt.date):
        return self._call("statement", False, dict(
            wholesaler_id=wholesaler_id, retailer_id=retailer_id, from_date=from_date, to_date=to_date))

    def events_after(self, after_event_id: int = 0, max_rows: int = 100, wholesaler_id: str | None = None,
                     *, partition: int | None = None):
        """One page of the feed: the events after after_event_id, in event_id order
        (a list of Event). Through a partitioned deployment's proxy, partition
        (0..N-1) names the feed to read: each partition has its own. Raises
        EventsPruned when events after the cursor were pruned. events() follows
        the feed for you."""
        params = dict(after_event_id=after_event_id, max_rows=max_rows, wholesaler_id=wholesaler_id)
        if partition is None:
            return self._call("events_after", False, params)
        return self._call("events_after_partition", False, {**params, "partition": partition})


class CreditClient(_Api):
    """Synchronous client over a psycopg ``Connection``, a ``psycopg_pool.ConnectionPool``
    or a conninfo string.

    Retries need a transaction of the client's own: a call made while the given
    connection is inside the caller's transaction runs in it and is not retried.
    Only a pool or a conninfo string can recover from a lost connection.

    ``metrics=`` (True, a prometheus_client registry, or a
    ``pgcredit.metrics.ClientMetrics``) reports each call's latency by
    function and code, retries by SQLSTATE and CreditBusy; see pgcredit.metrics.
    """

    def __init__(self, source: Any, *, retry: Retry = Retry(), metrics: Any = None):
        self._source = source
        self._own: psycopg.Connection | None = None
        self.retry = retry
        self.metrics = _metrics(metrics)

    def close(self) -> None:
        if self._own is not None:
            self._own.close()

    @contextmanager
    def _connection(self):
        """Yields (connection, whether a failure may be retried, the warnings
        that the commit is not confirmed, filled in by the time the block has
        exited, commit included)."""
        src = self._source
        if isinstance(src, str):
            if self._own is None or self._own.closed:
                self._own = psycopg.connect(src, autocommit=True)
            with self._watch(self._own) as unconfirmed:
                yield self._own, True, unconfirmed
        elif isinstance(src, psycopg.Connection):
            if src.info.transaction_status != TransactionStatus.IDLE:
                # The caller's transaction: the commit, and any warning with it, is the caller's.
                yield src, False, []
            elif src.autocommit:
                with self._watch(src) as unconfirmed:
                    yield src, True, unconfirmed  # the call is a transaction of its own: one round trip, not three
            else:
                with self._watch(src) as unconfirmed, src.transaction():
                    yield src, True, unconfirmed
        else:
            with src.connection() as conn, self._watch(conn) as unconfirmed:
                if conn.autocommit:
                    yield conn, True, unconfirmed
                else:
                    with conn.transaction():  # committed here, not by the pool, so that the warning is seen
                        yield conn, True, unconfirmed

    def _call(self, name: str, check: bool, params: dict) -> Any:
        if self.metrics is None:
            return self._attempts(name, check, params)
        start = time.perf_counter()
        try:
            result = self._attempts(name, check, params)
        except Exception as exc:
            self.metrics.called(name, time.perf_counter() - start, exc)
            raise
        self.metrics.called(name, time.perf_counter() - start, result)
        return result

    def _attempts(self, name: str, check: bool, params: dict) -> Any:
        query = QUERIES[name]
        for attempt in range(self.retry.attempts):
            # A conninfo or a pool can reconnect; a given connection is decided by _connection.
            retryable = not isinstance(self._source, psycopg.Connection)
            try:
                with self._connection() as (conn, retryable, unconfirmed):
                    with conn.cursor(row_factory=dict_row) as cur:
                        try:
                            cur.execute(query.sql, params)
                        except psycopg.Error as exc:
                            if _forget_plans(conn, exc):
                                conn.execute("DEALLOCATE ALL")
                            raise
                        rows = cur.fetchall()
            except psycopg.Error as exc:
                time.sleep(_after_failure(self.retry, name, attempt, exc, retryable, self.metrics))
            else:
                if unconfirmed:
                    raise _unconfirmed(name, params, unconfirmed)
                return _finish(query, rows, check)
        raise AssertionError("unreachable")


    def events(self, after_event_id: int = 0, wholesaler_id: str | None = None, *,
               partition: int | None = None, batch: int = 100, max_wait: float = 0.5,
               stop: threading.Event | None = None) -> Iterator[Event]:
        """Every event after after_event_id, in event_id order, for ever (or until
        stop is set: then it returns after its current call, also while it
        waits): when the feed is caught up it waits for new events (see _Waits;
        at most max_wait seconds between calls). The application keeps its
        cursor: store the event_id of the last event it has handled, in the
        same transaction as what it did with it, and pass it here on restart.
        Each call to the server is a transaction of its own: give the client a
        pool, a conninfo string or an autocommit connection."""
        waits = _Waits(max_wait)
        cursor = after_event_id
        stop = stop or threading.Event()
        while not stop.is_set():
            page = self.events_after(cursor, batch, wholesaler_id, partition=partition)
            for event in page:
                cursor = event.event_id
                yield event
            pause = waits.after(len(page), batch)
            if pause:
                stop.wait(pause)


class AsyncCreditClient(_Api):
    """Asynchronous twin of CreditClient over an ``AsyncConnection``, an
    ``AsyncConnectionPool`` or a conninfo string; every method is awaited."""

    def __init__(self, source: Any, *, retry: Retry = Retry(), metrics: Any = None):
        self._source = source
        self._own: psycopg.AsyncConnection | None = None
        self.retry = retry
        self.metrics = _metrics(metrics)

    async def close(self) -> None:
        if self._own is not None:
            await self._own.close()

    @asynccontextmanager
    async def _connection(self):
        src = self._source
        if isinstance(src, str):
            if self._own is None or self._own.closed:
                self._own = await psycopg.AsyncConnection.connect(src, autocommit=True)
            with self._watch(self._own) as unconfirmed:
                yield self._own, True, unconfirmed
        elif isinstance(src, psycopg.AsyncConnection):
            if src.info.transaction_status != TransactionStatus.IDLE:
                yield src, False, []
            elif src.autocommit:
                with self._watch(src) as unconfirmed:
                    yield src, True, unconfirmed
            else:
                with self._watch(src) as unconfirmed:
                    async with src.transaction():
                        yield src, True, unconfirmed
        else:
            async with src.connection() as conn:
                with self._watch(conn) as unconfirmed:
                    if conn.autocommit:
                        yield conn, True, unconfirmed
                    else:
                        async with conn.transaction():
                            yield conn, True, unconfirmed

    async def _call(self, name: str, check: bool, params: dict) -> Any:
        if self.metrics is None:
            return await self._attempts(name, check, params)
        start = time.perf_counter()
        try:
            result = await self._attempts(name, check, params)
        except Exception as exc:
            self.metrics.called(name, time.perf_counter() - start, exc)
            raise
        self.metrics.called(name, time.perf_counter() - start, result)
        return result

    async def _attempts(self, name: str, check: bool, params: dict) -> Any:
        query = QUERIES[name]
        for attempt in range(self.retry.attempts):
            retryable = not isinstance(self._source, psycopg.AsyncConnection)
            try:
                async with self._connection() as (conn, retryable, unconfirmed):
                    async with conn.cursor(row_factory=dict_row) as cur:
                        try:
                            await cur.execute(query.sql, params)
                        except psycopg.Error as exc:
                            if _forget_plans(conn, exc):
                                await conn.execute("DEALLOCATE ALL")
                            raise
                        rows = await cur.fetchall()
            except psycopg.Error as exc:
                await asyncio.sleep(_after_failure(self.retry, name, attempt, exc, retryable, self.metrics))
            else:
                if unconfirmed:
                    raise _unconfirmed(name, params, unconfirmed)
                return _finish(query, rows, check)
        raise AssertionError("unreachable")

    async def events(self, after_event_id: int = 0, wholesaler_id: str | None = None, *,
                     partition: int | None = None, batch: int = 100, max_wait: float = 0.5,
                     stop: asyncio.Event | None = None) -> AsyncIterator[Event]:
        """CreditClient.events as an async iterator: ``async for event in client.events(cursor): ...``;
        stop, an asyncio.Event, ends it as CreditClient.events' does."""
        waits = _Waits(max_wait)
        cursor = after_event_id
        stop = stop or asyncio.Event()
        while not stop.is_set():
            page = await self.events_after(cursor, batch, wholesaler_id, partition=partition)
            for event in page:
                cursor = event.event_id
                yield event
            pause = waits.after(len(page), batch)
            if pause:
                try:
                    await asyncio.wait_for(stop.wait(), pause)
                except asyncio.TimeoutError:
                    pass
