"""Issue 20, item 2: point-in-time recovery, then every call sent again with its
own key. A server archives its WAL to a folder of the test's own; callers keep
writing while `pg_basebackup` copies it and after; a copy of the backup is
recovered to a moment in the middle of that traffic (`recovery_target_time`).
The recovered book must reconcile, hold exactly the calls committed before that
moment, and, when every call is sent again by its key, answer `replayed` for
those and book each later one once. The self-check sends them again under new
keys on a second copy: the same checks must fail."""

from __future__ import annotations

import collections
import datetime as dt
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgcredit import CreditClient, migrate
from pgcredit.tools import embedded
from support.book import KEYED, Call, Traffic, figures, items, model, open_traffic_lines, resend
from support.book import TRAFFIC_W as W
from support.failover import Node, free_port, wait_for
from support.reliability import report

# A long harness: the default run takes it on the first server version only (conftest.py).
pytestmark = pytest.mark.first_version_by_default

LINES = [f"t{i}" for i in range(4)]
WORKERS = 4


@dataclass
class Recorded:
    """What the primary went through: the calls, the moment chosen, the backup."""

    base: Path
    bin: Path
    archive: Path
    backup: Path
    calls: list[Call]
    backup_started: float
    target: float
    major: int

    def since_backup(self) -> list[Call]:
        """The calls to send again: those the base backup may not hold (the
        others were answered before it began)."""
        return [c for c in self.calls if c.acked >= self.backup_started]


def seconds(long_run: bool) -> tuple[float, float, float]:
    """Traffic before the backup, from its end to the target, from the target to the end."""
    return (10, 10, 10) if long_run else (0.5, 1.0, 1.0)


@pytest.fixture(scope="module")
def recorded(cluster, long_run):
    if not (cluster.bin / "pg_basebackup").exists():
        pytest.skip(f"pg_basebackup is missing from {cluster.bin}: point-in-time recovery needs a base backup")
    base = Path(tempfile.mkdtemp(prefix="pgcredit-pitr-"))
    archive = base / "archive"
    archive.mkdir()
    embedded.give_to_server_user(base)
    primary = Node(base / "primary", cluster.bin, free_port())
    try:
        primary.init()
        # The archive_command PostgreSQL's documentation gives: never overwrite a segment.
        primary.start("fsync=off", "wal_level=replica", "archive_mode=on",
                      f"archive_command=test ! -f {archive}/%f && cp %p {archive}/%f")
        primary.sql("CREATE DATABASE credit")
        dsn = primary.conninfo("credit")
        migrate(dsn)
        admin = CreditClient(dsn)
        open_traffic_lines(admin, LINES)
        admin.close()

        before, middle, after = seconds(long_run)
        clients = [CreditClient(primary.conninfo("credit", application_name="pitr-traffic")) for _ in range(WORKERS)]
        traffic = Traffic(clients, LINES).start()
        try:
            time.sleep(before)
            backup_started = time.time()
            # -X none: the backup holds no WAL of its own, so recovery reads the archive alone.
            done = subprocess.run(embedded.as_server_user(
                [str(cluster.bin / "pg_basebackup"), "-D", str(base / "backup"), "-X", "none", "-c", "fast",
                 "--no-sync", "-d", primary.conninfo()]), capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            time.sleep(middle)
            target = time.time()
            time.sleep(after)
        finally:
            traffic.stop()
            for c in clients:
                c.close()
        assert traffic.errors == []
        # The segment holding the last commits goes to the archive now, not when it fills.
        last = primary.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_for("the last WAL segment to be archived", lambda: primary.sql(
            "SELECT last_archived_wal >= %s FROM pg_stat_archiver", [last])[0][0], timeout=60)
        yield Recorded(base, cluster.bin, archive, base / "backup", traffic.rec.calls, backup_started, target,
                       cluster.major)
    finally:
        if primary.initialized:
            primary.stop("immediate")  # nothing in it is kept
        shutil.rmtree(base, ignore_errors=True)


def recover(r: Recorded, name: str) -> Node:
    """A copy of the base backup, recovered from the archive to r.target and promoted."""
    node = Node(r.base / name, r.bin, free_port())
    shutil.copytree(r.backup, node.data, symlinks=True)
    (node.data / "recovery.signal").touch()
    embedded.give_to_server_user(node.base)
    stamp = dt.datetime.fromtimestamp(r.target, dt.timezone.utc).isoformat()
    node.start("fsync=off", f"restore_command=cp {r.archive}/%f %p", f"recovery_target_time={stamp}",
               "recovery_target_action=promote")
    wait_for("recovery to reach the target and promote", lambda: node.sql("SELECT NOT pg_is_in_recovery()")[0][0],
             timeout=60)
    return node


def stopped_before(node: Node) -> dt.datetime:
    """The commit time recovery stopped before, from the server's log."""
    log = node.log.read_text()
    found = re.search(r"recovery stopping before commit of transaction \d+, time (.+)", log)
    assert found, f"recovery did not stop at a commit:\n{log[-2000:]}"
    return dt.datetime.fromisoformat(found.group(1).strip().replace(" ", "T", 1))


IDS = ("reservation_id", "ledger_entry_id")
AMOUNTS = ("amount", "debited_amount", "released_amount", "due_date", "status")


def judge(pairs: list[tuple[Call, object]], target: float) -> tuple[list[str], collections.Counter]:
    """Each call's second answer against when it was first made: acknowledged
    before the target, it must replay with the same ids; sent after, it must be
    booked now (replayed false). A call in flight at the target may be either;
    which one it was is counted."""
    problems, counts = [], collections.Counter()
    for call, answer in pairs:
        for first, again in zip(items(call), answer if isinstance(answer, list) else [answer]):
            what = f"{call.fn} {first.line[1]}/{first.key}"
            if first.result.code != "ok" or again.code != "ok":
                problems.append(f"{what}: first {first.result.code}, again {again.code}")
                continue
            # A hold's replay tells its state now (converted, released), not the state first answered.
            compared = [f for f in AMOUNTS if not (first.op == "reserve" and f == "status")]
            changed = [f for f in compared if getattr(first.result, f, None) != getattr(again, f, None)]
            if changed:
                problems.append(f"{what}: {changed} differ")
            if call.acked < target:
                counts["before"] += 1
                if not again.replayed:
                    problems.append(f"{what}: committed before the target, booked again")
                elif [getattr(first.result, f, None) for f in IDS] != [getattr(again, f, None) for f in IDS]:
                    problems.append(f"{what}: replayed with other ids")
            elif call.sent > target:
                counts["after"] += 1
                if again.replayed:
                    problems.append(f"{what}: sent after the target, yet in the recovered book")
            else:
                counts["in flight, kept" if again.replayed else "in flight, booked again"] += 1
    return problems, counts


def replayed(answer) -> bool:
    return all(a.replayed for a in (answer if isinstance(answer, list) else [answer]))


def survivors(pairs) -> list[Call]:
    """The calls whose effects the recovered book held: those answered as replays."""
    return [call for call, answer in pairs if replayed(answer)]


def test_recovery_to_a_moment_then_replay_by_key_books_each_call_once(recorded):
    r = recorded
    node = recover(r, "restored")
    try:
        dsn = node.conninfo("credit")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
            recovered = figures(conn, [(W, line) for line in LINES])
        client = CreditClient(dsn)
        try:
            pairs = resend(client, r.since_backup())
            # Once more, what the first replay booked: now it is there.
            again = resend(client, [call for call, answer in pairs if not replayed(answer)])
        finally:
            client.close()
        problems, counts = judge(pairs, r.target)
        with psycopg.connect(dsn, autocommit=True) as conn:
            final = figures(conn, [(W, line) for line in LINES])
            findings = conn.execute("SELECT * FROM credit.reconcile()").fetchall()
        stop = stopped_before(node)
    finally:
        node.stop("immediate")

    keyed = [c for c in r.calls if c.fn in KEYED]
    report(f"PITR pg{r.major}: {len(r.calls)} calls by {WORKERS} threads, {len(keyed)} of them keyed; the "
           f"{len(pairs)} keyed calls answered after the base backup began sent again by key: {counts['before']} "
           f"items answered before the target replayed, {counts['after']} sent after it booked once, "
           f"{counts['in flight, kept']} in flight at the target replayed and {counts['in flight, booked again']} "
           f"booked; recovery stopped before a commit {(stop.timestamp() - r.target) * 1000:.1f} ms after the "
           f"target; problems {len(problems)}")
    assert counts["before"] and counts["after"]  # the target split the traffic after the backup
    assert stop.timestamp() > r.target
    # The recovered book held exactly what was committed before the target ...
    assert recovered == model([c for c in r.calls if c.acked < r.backup_started] + survivors(pairs))
    # ... every call answered as it should ...
    assert problems == []
    # ... and after the replay each call of the traffic counts once: the figures are the model of all of them.
    assert final == model(r.calls)
    assert findings == []
    assert again and all(replayed(answer) for _, answer in again)


def test_self_check_a_replay_under_new_keys_fails_the_checks(recorded):
    """The same recovery, then every call sent again under a new key, as a
    caller that does not keep its keys would: what the recovered book already
    held is booked a second time, and the checks above must say so."""
    r = recorded
    node = recover(r, "restored-new-keys")
    try:
        dsn = node.conninfo("credit")
        client = CreditClient(dsn)
        try:
            pairs = resend(client, r.since_backup(), suffix="~new")
        finally:
            client.close()
        problems, counts = judge(pairs, r.target)
        with psycopg.connect(dsn, autocommit=True) as conn:
            final = figures(conn, [(W, line) for line in LINES])
            findings = conn.execute("SELECT * FROM credit.reconcile()").fetchall()
    finally:
        node.stop("immediate")
    booked_twice = [p for p in problems if p.endswith("booked again")]
    report(f"PITR self-check pg{r.major}, the same calls sent again under new keys: {len(booked_twice)} items "
           f"committed before the target booked a second time; the figures "
           f"{'differ from' if final != model(r.calls) else 'match'} the model")
    assert booked_twice and len(booked_twice) == counts["before"]
    assert final != model(r.calls)
    assert findings == []  # reconcile() cannot see it: every row is consistent, just there twice
