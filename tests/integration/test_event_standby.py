"""events_after on a hot standby: it reads without writing anything, up to
the horizon the primary stored and the run of committed events right after
it, judged by the standby's own snapshot; a rolled-back event's gap is
crossed there only once the primary's horizon has passed it (a call on the
primary, or the prune job) and that has replicated."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from support.db import call
from support.events import read_feed
from support.failover import pair, wait_for


def replayed(primary: psycopg.Connection, standby: psycopg.Connection) -> None:
    lsn = primary.execute("SELECT pg_current_wal_insert_lsn() AS l").fetchone()["l"]
    wait_for("the standby to replay the primary's WAL", lambda: standby.execute(
        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn AS done", [lsn]).fetchone()["done"])


def test_a_standby_reads_the_feed_up_to_what_it_can_prove_final(cluster):
    with pair(cluster.bin) as p, \
            psycopg.connect(p.dsn_primary, autocommit=True, row_factory=dict_row) as primary, \
            psycopg.connect(p.standby.conninfo(p.DB), autocommit=True, row_factory=dict_row) as standby:
        start = read_feed(primary)[-1]["event_id"]  # the lines the pair opened
        call(primary, "open_line", "w", "r", 100)
        call(primary, "reserve_credit", "w", "r", "o1", 10)
        replayed(primary, standby)
        # Readable on the standby with no reader on the primary since: the run.
        assert [e["ref"] for e in read_feed(standby, after=start)] == [None, "o1"]

        with pytest.raises(ZeroDivisionError):
            with primary.transaction():
                call(primary, "reserve_credit", "w", "r", "o2", 10)
                1 / 0
        call(primary, "reserve_credit", "w", "r", "o3", 10)
        replayed(primary, standby)
        # Behind the gap o2 left, the standby cannot tell a rolled-back event from one still open.
        assert [e["ref"] for e in read_feed(standby, after=start)] == [None, "o1"]

        read_feed(primary, after=start)  # a reader on the primary advances the horizon past the gap
        replayed(primary, standby)
        assert [e["ref"] for e in read_feed(standby, after=start)] == [None, "o1", "o3"]
        assert standby.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"]
