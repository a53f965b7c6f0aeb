"""An order service that cancels the orders whose credit holds expired.

The service keeps its orders in its own database (schema `orders`); pgcredit
decides about credit. When a customer does not confirm an order in time,
the hold that reserve_credit made for it expires (reserve_credit's
expires_in), and pgcredit writes a `hold_expired` event: this consumer
follows the event feed and cancels those orders. It keeps its cursor in its
own database, in the same transaction as the cancellation, so that each
event takes effect once whatever crashes when.

    python consumer.py --credit-dsn postgresql://orders_app@db/shop --orders-dsn postgresql://orders@db2/orders

The credit DSN's role needs credit_app (events_after); the orders DSN owns
schema orders. Run it as one process per feed: two at once would both act
(it would be harmless here, the cancellation is conditional, but wasteful).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging

import psycopg

from pgcredit import CreditClient, Event, EventsPruned

log = logging.getLogger("order_events")

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS orders;
CREATE TABLE IF NOT EXISTS orders.orders (
    wholesaler_id text NOT NULL,
    retailer_id   text NOT NULL,
    order_ref     text NOT NULL,
    status        text NOT NULL DEFAULT 'awaiting_confirmation',
    cancel_reason text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wholesaler_id, retailer_id, order_ref)
);
-- Where this consumer is in pgcredit's feed: the last event_id it handled.
CREATE TABLE IF NOT EXISTS orders.feed_cursor (
    feed     text PRIMARY KEY,
    event_id bigint NOT NULL
);
"""

FEED = "pgcredit"


def cursor(orders: psycopg.Connection) -> int:
    row = orders.execute("SELECT event_id FROM orders.feed_cursor WHERE feed = %s", [FEED]).fetchone()
    return row[0] if row else 0


def handle(orders: psycopg.Connection, event: Event) -> bool:
    """Acts on one event and moves the cursor past it, in one transaction of
    the orders database. True when an order was cancelled."""
    with orders.transaction():
        cancelled = False
        if event.kind == "hold_expired":
            # Only an order still waiting: one confirmed meanwhile (its hold
            # converted) or cancelled by the customer is left alone.
            cancelled = orders.execute("""
                UPDATE orders.orders SET status = 'cancelled', cancel_reason = 'credit hold expired',
                                         updated_at = now()
                 WHERE wholesaler_id = %s AND retailer_id = %s AND order_ref = %s
                   AND status = 'awaiting_confirmation'""",
                                       [event.wholesaler_id, event.retailer_id, event.ref]).rowcount == 1
        orders.execute("""
            INSERT INTO orders.feed_cursor (feed, event_id) VALUES (%s, %s)
            ON CONFLICT (feed) DO UPDATE SET event_id = excluded.event_id""", [FEED, event.event_id])
    if cancelled:
        lag = dt.datetime.now(dt.timezone.utc) - event.created_at
        log.info("cancelled %s/%s %s: its hold expired at %s (event %s, %.1f s ago)", event.wholesaler_id,
                 event.retailer_id, event.ref, event.data["effective_at"], event.event_id, lag.total_seconds())
    return cancelled


def catch_up(credit: CreditClient, orders: psycopg.Connection) -> int:
    """Handles every event readable now, then returns how many orders it cancelled."""
    cancelled, after = 0, cursor(orders)
    while True:
        page = credit.events_after(after, 100)
        for event in page:
            cancelled += handle(orders, event)
            after = event.event_id
        if len(page) < 100:
            return cancelled


def follow(credit: CreditClient, orders: psycopg.Connection) -> None:
    """For ever: every event as it becomes readable (events() waits for them)."""
    for event in credit.events(cursor(orders)):
        handle(orders, event)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credit-dsn", required=True, help="the pgcredit database (a role with credit_app)")
    parser.add_argument("--orders-dsn", required=True, help="the order service's own database")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    credit = CreditClient(args.credit_dsn)
    with psycopg.connect(args.orders_dsn, autocommit=True) as orders:
        orders.execute(SCHEMA)
        try:
            follow(credit, orders)
        except EventsPruned as exc:
            # The feed no longer has what this consumer missed: only a person
            # can decide how to rebuild the orders' state (from list_reservations).
            log.error("stopped: %s; rebuild the orders' state, then set orders.feed_cursor to %s",
                      exc, exc.pruned_through)
            return 2
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
