"""examples/order_events: the order service that cancels the orders whose
credit holds expired, against a real pgcredit database and an orders
database of its own; its cursor survives a crash between the cancellation
and its commit, and no order is cancelled twice."""

from __future__ import annotations

import datetime as dt
import importlib.util
import time
from pathlib import Path

import psycopg
import pytest

from pgcredit import CreditClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "order_events" / "consumer.py"


@pytest.fixture(scope="module")
def consumer():
    spec = importlib.util.spec_from_file_location("order_events_consumer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def orders_dsn(cluster):
    name = cluster.create_database(template=None)
    yield cluster.dsn(name)
    cluster.drop_database(name)


def place(credit, orders, ref: str, expires_in: dt.timedelta) -> None:
    credit.reserve_credit("acme", "corner", ref, 10, expires_in)
    orders.execute("INSERT INTO orders.orders (wholesaler_id, retailer_id, order_ref) VALUES ('acme', 'corner', %s)",
                   [ref])


def statuses(orders) -> dict[str, str]:
    return dict(orders.execute("SELECT order_ref, status FROM orders.orders ORDER BY 1").fetchall())


def test_expired_holds_cancel_their_orders_once(consumer, dsn, orders_dsn, caplog):
    credit = CreditClient(dsn)
    with psycopg.connect(orders_dsn, autocommit=True) as orders:
        orders.execute(consumer.SCHEMA)
        credit.open_line("acme", "corner", 1000)
        place(credit, orders, "late-1", dt.timedelta(milliseconds=50))
        place(credit, orders, "late-2", dt.timedelta(milliseconds=50))
        place(credit, orders, "confirmed", dt.timedelta(hours=1))
        credit.convert_to_debit("acme", "corner", "confirmed")
        orders.execute("UPDATE orders.orders SET status = 'confirmed' WHERE order_ref = 'confirmed'")
        time.sleep(0.1)
        assert consumer.catch_up(credit, orders) == 0  # expired, but no sweep yet: no event yet
        assert credit.expire_reservations() == 2

        # The consumer dies between cancelling and committing, once.
        orders.execute("""
            CREATE SEQUENCE crash;
            CREATE FUNCTION crash_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('crash') = 1 THEN RAISE EXCEPTION 'the consumer crashed'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER crash_once BEFORE INSERT OR UPDATE ON orders.feed_cursor
                FOR EACH ROW EXECUTE FUNCTION crash_once();""")
        before = consumer.cursor(orders)
        with pytest.raises(psycopg.errors.RaiseException, match="the consumer crashed"):
            consumer.catch_up(credit, orders)
        assert consumer.cursor(orders) == before
        assert statuses(orders) == {"confirmed": "confirmed", "late-1": "awaiting_confirmation",
                                    "late-2": "awaiting_confirmation"}

        with caplog.at_level("INFO", logger="order_events"):
            assert consumer.catch_up(credit, orders) == 2
        assert statuses(orders) == {"confirmed": "confirmed", "late-1": "cancelled", "late-2": "cancelled"}
        assert "cancelled acme/corner late-1: its hold expired at" in caplog.text
        last = consumer.cursor(orders)
        assert last == credit.events_after(0, 1000)[-1].event_id
        assert consumer.catch_up(credit, orders) == 0  # nothing twice
        assert consumer.cursor(orders) == last

        # Left behind longer than the feed keeps events: it stops and says so.
        place(credit, orders, "later", dt.timedelta(hours=1))
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute("SELECT credit.prune_events(interval '0')")
        orders.execute("UPDATE orders.feed_cursor SET event_id = 0")
        with caplog.at_level("ERROR", logger="order_events"):
            assert consumer.main(["--credit-dsn", dsn, "--orders-dsn", orders_dsn]) == 2
        assert "stopped: events_pruned" in caplog.text
    credit.close()
