"""The publication pgcredit_events with a real subscriber: a second PostgreSQL
subscribes with CREATE SUBSCRIPTION (the subscriber's table as OPERATIONS.md
gives it) and receives every event of the feed once, with its event_id, the
row as the publisher holds it: those written before it subscribed (the
initial copy), those written after, and those written while it was down;
pruning the feed removes nothing there."""

from __future__ import annotations

import re
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from pgcredit import migrate
from support.db import call, private_server

OPERATIONS = Path(__file__).resolve().parents[2] / "OPERATIONS.md"
LOGICAL = ("fsync=off", "wal_level=logical", "max_wal_senders=4", "max_replication_slots=4")


def subscriber_table_sql() -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    return re.search(r"The subscriber's table:\n\n```sql\n(.*?)```", text, re.S).group(1)


def feed(conn) -> list[tuple]:
    return conn.execute("SELECT event_id, kind, wholesaler_id, retailer_id, ref, amount, available, data, "
                        "created_at FROM credit.event ORDER BY event_id").fetchall()


def received(sub) -> list[tuple]:
    return feed(sub)


def wait_for(sub, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while sub.execute("SELECT count(*) FROM credit.event").fetchone()[0] < count:
        assert time.monotonic() < deadline, f"the subscriber has {received(sub)[-1:]} of {count} events"
        time.sleep(0.2)


def book(pub, n: int, tag: str) -> None:
    for i in range(n):
        call(pub, "reserve_credit", "w", "r", f"{tag}{i}", 1)
        if i % 3 == 0:
            call(pub, "record_payment", "w", "r", f"{tag}p{i}", 1)
    pub.execute("SELECT credit.prune_events(interval '30 days')")  # the job's call


def test_a_subscriber_receives_every_event_once(cluster):
    with private_server(cluster, LOGICAL) as publisher, private_server(cluster) as subscriber:
        shop = publisher.ensure_database("shop")
        migrate(shop)
        copy = subscriber.ensure_database("copy")
        with psycopg.connect(shop, autocommit=True) as pub, psycopg.connect(copy, autocommit=True) as sub:
            call(pub, "open_line", "w", "r", 10**6)
            book(pub, 10, "before")
            pub.execute("SELECT count(*) FROM credit.events_after(0, 1)")  # a reader's call
            sub.execute(subscriber_table_sql())
            sub.execute(f"CREATE SUBSCRIPTION pgcredit CONNECTION '{shop}' PUBLICATION pgcredit_events")
            book(pub, 20, "after")
            # Committed and not yet read by anyone: published at its commit all the same.
            call(pub, "reserve_credit", "w", "r", "waiting", 1)
            wait_for(sub, len(feed(pub)))
            assert received(sub) == feed(pub)

            subscriber.stop()
            book(pub, 15, "down")  # published while the subscriber is down: its slot keeps them
            subscriber.start()
            with psycopg.connect(copy, autocommit=True) as sub2:
                wait_for(sub2, len(feed(pub)))
                assert received(sub2) == feed(pub)
                assert [e[4] for e in received(sub2)].count("waiting") == 1

                everything = feed(pub)
                assert pub.execute("SELECT credit.prune_events(interval '0') AS n").fetchone()[0] == len(everything)
                book(pub, 5, "later")
                wait_for(sub2, len(everything) + 5 + 2)
                # Every event once, in event_id order, with the pruned ones still there.
                got = received(sub2)
                assert got[:len(everything)] == everything
                assert [e[0] for e in got] == sorted({e[0] for e in got})
                assert feed(pub) == got[len(everything):]
                # Only the feed is published.
                tables = pub.execute("SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                                     "WHERE pubname = 'pgcredit_events'").fetchall()
                assert tables == [("credit.event",)]
                assert pub.execute("SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication "
                                   "WHERE pubname = 'pgcredit_events'").fetchone() == (True, False, False, False)
                sub2.execute("DROP SUBSCRIPTION pgcredit")  # and its slot on the publisher
