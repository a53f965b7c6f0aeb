"""Migration 0010 on a database made before it (the inbox and its mover,
migrations 0008 and 0009): events already in the feed keep their ids, a
pruned prefix stays pruned, the events still in the inbox are carried into
the feed after them, and the feed reads as the mover would have made it;
events written afterwards follow on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from pgcredit.migrate import migrate
from support.db import call, private_server
from support.events import read_feed

REPO = Path(__file__).resolve().parents[2]
MIGRATION = "sql/migrations/0010_feed_written_in_place.sql"


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True)


@pytest.fixture(scope="module")
def before(tmp_path_factory) -> Path:
    """sql/ as it was before migration 0010: the parent of the commit that added it."""
    added = git("log", "--diff-filter=A", "--format=%H", "-1", "--", MIGRATION).stdout.decode().strip()
    if not added:
        pytest.skip("migration 0010 is not committed in this checkout's history")
    out = tmp_path_factory.mktemp("before")
    tar = git("archive", f"{added}^", "sql")
    assert tar.returncode == 0, tar.stderr
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar.stdout, check=True)
    assert not (out / MIGRATION).exists() and (out / "sql/migrations/0008_create_event_feed.sql").exists()
    return out / "sql"


def book(conn, moved: bool) -> None:
    """The same changes on each twin; the first half moved into the feed and pruned, the rest left in the
    inbox (or moved, with moved=True)."""
    call(conn, "open_line", "w", "r", 1000)
    call(conn, "reserve_credit", "w", "r", "o1", 100)
    call(conn, "reserve_credit", "w", "r", "o2", 50)
    conn.execute("SELECT count(*) FROM credit.events_after(0, 1)")  # the mover moves these three
    conn.execute("SELECT credit.prune_events(interval '0')")  # and they are pruned
    call(conn, "reserve_credit", "w", "r", "o3", 30)
    assert call(conn, "amend_reservation", "w", "r", "o3", 40, "a1")["code"] == "ok"  # data written NULL
    call(conn, "record_payment", "w", "r", "p1", 5)
    call(conn, "block_line", "w", "r", "audit")
    if moved:
        conn.execute("SELECT count(*) FROM credit.events_after(3, 1)")


def test_the_inbox_is_carried_into_the_feed_after_its_events(cluster, before):
    with private_server(cluster) as server:
        old, new = server.ensure_database("old"), server.ensure_database("new")
        for dsn in (old, new):
            migrate(dsn, before)
        with psycopg.connect(old, autocommit=True, row_factory=dict_row) as a, \
                psycopg.connect(new, autocommit=True, row_factory=dict_row) as b:
            book(a, moved=True)
            book(b, moved=False)
            assert b.execute("SELECT count(*) AS n FROM credit.event_inbox").fetchone()["n"] == 4
            expected = read_feed(a, after=3)

            migrate(new)
            assert b.execute("SELECT to_regclass('credit.event_inbox') AS t").fetchone()["t"] is None
            got = read_feed(b, after=3)
            fields = ("event_id", "kind", "wholesaler_id", "retailer_id", "ref", "amount", "data")
            assert [[e[f] for f in fields] for e in got] == [[e[f] for f in fields] for e in expected]
            assert [e["event_id"] for e in got] == [4, 5, 6, 7]
            assert got[1]["data"] == {"order_ref": "o3", "previous_amount": "30.00", "remaining_amount": "40.00",
                                      "hold_status": "active", "available": "810.00"}
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="^events_pruned"):
                read_feed(b, after=0)
            # Written since: after them, readable at once.
            call(b, "unblock_line", "w", "r", "done")
            assert [(e["event_id"], e["kind"]) for e in read_feed(b, after=7)] == [(8, "line_unblocked")]
            assert b.execute("SELECT events_waiting FROM credit.monitor_events").fetchone()["events_waiting"] == 0
