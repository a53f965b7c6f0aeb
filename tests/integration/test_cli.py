"""The `pgcredit` command, with a DSN and with its own embedded servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from support.db import call
from pgcredit.tools.bench import AB_CONFIGS, AB_WORKLOADS, EVENTS_OFF, EVENTS_WORKLOADS
from pgcredit.tools.cli import AGING_COLUMNS, main


def pgcredit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pgcredit", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_demo_against_a_given_database(dsn, capsys):
    assert main(["demo", "--dsn", dsn]) == 0
    out = capsys.readouterr().out
    for title in ("Scenario 1", "Scenario 2", "Scenario 3", "Scenario 4", "Race: 32 concurrent"):
        assert title in out
    assert "20 ok, 12 insufficient_credit" in out
    assert "FAIL" not in out and "all expectations held" in out


def test_demo_with_no_database_configured(cluster):
    done = pgcredit("demo", env={"PGCREDIT_PG_BIN": str(cluster.bin)})
    assert done.returncode == 0, done.stderr
    assert "starting a throwaway PostgreSQL" in done.stdout and "all expectations held" in done.stdout


def test_migrate_reconcile_status_expire_with_a_dsn(dsn, conn, capsys):
    assert main(["migrate", "--dsn", dsn]) == 0
    assert "no migration pending" in capsys.readouterr().out
    call(conn, "open_line", "w", "r", 100)
    call(conn, "reserve_credit", "w", "r", "o", 10)
    assert main(["--dsn", dsn, "reconcile"]) == 0
    assert "healthy" in capsys.readouterr().out
    conn.execute("UPDATE credit.line SET reserved = 11")
    assert main(["reconcile", "--dsn", dsn]) == 1
    assert "reserved_total\tw/r\texpected 10.00\tactual 11" in capsys.readouterr().out
    assert main(["status", "--dsn", dsn]) == 0
    out = capsys.readouterr().out
    assert "migrations pending: none" in out and "book (per currency and line status)" in out
    assert main(["expire", "--dsn", dsn]) == 0
    assert "expired 0 hold(s)" in capsys.readouterr().out


def test_aging_as_a_table_and_as_csv(dsn, conn, capsys):
    call(conn, "open_line", "w", "r", 1000)
    call(conn, "open_line", "v", "r", 1000)
    for w in ("w", "v"):
        call(conn, "reserve_credit", w, "r", "o", 300)
        call(conn, "convert_to_debit", w, "r", "o", None, "2000-01-01")
    assert main(["aging", "--dsn", dsn, "--wholesaler", "w"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "aging as of today" and out[1].split()[:3] == ["wholesaler", "retailer", "cur"]
    assert out[3].split() == ["w", "r", "INR", "0.00", "0.00", "0.00", "0.00", "300.00", "0.00", "300.00",
                              "2000-01-01"]
    assert out[-1] == "1 line(s) with anything unpaid or unapplied"
    assert main(["aging", "--dsn", dsn, "--as-of", "2001-01-01", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [",".join(AGING_COLUMNS)]  # nothing was made by then
    assert main(["aging", "--dsn", dsn, "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "v,r,INR,0.00,0.00,0.00,0.00,300.00,0.00,300.00,2000-01-01",
        "w,r,INR,0.00,0.00,0.00,0.00,300.00,0.00,300.00,2000-01-01"]
    with pytest.raises(SystemExit):
        main(["aging", "--dsn", dsn, "--as-of", "yesterday"])


def test_migrate_refuses_a_database_that_is_not_utf8(cluster, capsys):
    with cluster.admin() as conn:
        conn.execute("CREATE DATABASE ascii_db ENCODING 'SQL_ASCII' TEMPLATE template0")
    try:
        assert main(["migrate", "--dsn", cluster.dsn("ascii_db")]) == 2
        assert "encoding SQL_ASCII; pgcredit needs UTF8" in capsys.readouterr().err
        with psycopg.connect(cluster.dsn("ascii_db")) as conn:
            assert conn.execute("SELECT to_regnamespace('credit')").fetchone() == (None,)
    finally:
        cluster.drop_database("ascii_db")


def test_database_url_is_used(dsn, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert main(["reconcile"]) == 0


def test_unmigrated_database_gets_a_hint(cluster, capsys):
    empty = cluster.create_database(template=None)
    try:
        assert main(["reconcile", "--dsn", cluster.dsn(empty)]) == 2
        assert "pgcredit migrate" in capsys.readouterr().err
    finally:
        cluster.drop_database(empty)


def test_persistent_embedded_server(cluster):
    home = Path(tempfile.mkdtemp(prefix="pgc-home-"))  # /tmp, so the server account can reach it
    os.chmod(home, 0o755)
    env = {"PGCREDIT_HOME": str(home / "h"), "PGCREDIT_PG_BIN": str(cluster.bin)}
    try:
        status = pgcredit("status", env=env)
        assert status.returncode == 1 and "run `pgcredit migrate`" in status.stdout
        assert pgcredit("migrate", env=env).returncode == 0
        assert pgcredit("reconcile", env=env).returncode == 0
        data = home / "h" / f"pg{cluster.major}" / "data"
        assert (data / "PG_VERSION").exists()  # the data persists between commands
        assert "migrations pending: none" in pgcredit("status", env=env).stdout
        stop = pgcredit("stop", env=env)
        assert "stopped" in stop.stdout
    finally:
        pgcredit("stop", env=env)
        shutil.rmtree(home, ignore_errors=True)


def test_bench_quick_runs_and_reports(tmp_path):
    """Only that it runs and reports: speed is measured by `pgcredit bench`, not asserted."""
    done = pgcredit("bench", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[1/" in done.stderr  # progress
    report = (tmp_path / "bench.md").read_text()
    assert report == done.stdout.strip() + "\n"
    for workload in ("bare_hot", "reserve_hot", "bare_spread", "cte_spread", "cte_fn_spread", "model_fn_spread",
                     "reserve_spread", "lifecycle",
                     "reserve_history_h0", "reserve_history_h1m", "naive_small", "python_reserve_hot",
                     "reserve_batch_hot", "reserve_batch_spread", "payment_batch"):
        assert f"| tuned | {workload} |" in report
    # The second server configuration: PostgreSQL's defaults, TCP, simple protocol.
    for workload in ("bare_hot", "reserve_hot", "cte_spread", "cte_fn_spread", "model_fn_spread",
                     "reserve_spread", "reserve_history_h1m"):
        assert f"| default | {workload} |" in report
    assert "pgbench -M simple" in report and "shared_buffers=128MB" in report
    assert "| server | target | ratio | rounds | wanted | |" in report
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_compare_sql_runs_and_reports(tmp_path):
    """The A/B against another sql/ tree (here: this one, so both sides are
    the same code): it runs, alternates, and reports a ratio per round."""
    sql = Path(__file__).resolve().parents[2] / "sql"
    done = pgcredit("bench", "--compare-sql", str(sql), "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "ab.md").read_text()
    assert (f"A: {sql}, its feed followed by 1 consumer(s); "
            f"B: this installation's sql/, its feed followed by 1 consumer(s).") in report
    rows = [line for line in report.splitlines() if line.startswith(("| tuned | ", "| default | "))
            and " @" in line.split(" | ")[1]]
    # Both server configurations: the tuned one, then PostgreSQL's defaults over TCP.
    assert [r.split(" | ")[:2] for r in rows[:len(AB_WORKLOADS) * 2]] == [
        [f"| {config}", f"{name} @{clients}"] for config in AB_CONFIGS for name, clients in AB_WORKLOADS]
    for row in rows[:len(AB_WORKLOADS) * 2]:
        assert float(row.split(" | ")[3]) > 0  # the median of B/A
    # The hot batch against the bare UPDATE, on each side, on each configuration.
    assert [line.split(":")[0] for line in report.splitlines()
            if line.startswith("- ") and not line.startswith("- **")] == ["- A", "- B"] * 2
    # This tree has the event feed: B's rounds were followed by a consumer, whose latency is reported.
    followed = [line.split(" | ") for line in report.splitlines() if line.endswith(" |") and " | B | " in line]
    assert {(cells[0], cells[1]) for cells in followed} == {
        (f"| {config}", f"{name} @{clients}") for config in AB_CONFIGS for name, clients in AB_WORKLOADS
        if name != "bare_hot"}  # the bare UPDATE writes no event
    assert all(float(cells[5]) >= 0 for cells in followed)  # p99 seconds


def test_bench_events_runs_and_reports(tmp_path):
    """`pgcredit bench --events`: reserve_credit with the feed against the
    same SQL without it, on both server configurations, B followed by the
    consumers asked for; every target gets a verdict (speed is not asserted)."""
    done = pgcredit("bench", "--events", "--readers", "2", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "events.md").read_text()
    assert report == done.stdout.strip() + "\n"
    assert "A: this installation's sql/ with the event feed's writes discarded" in report
    assert "followed by 2 consumer(s)" in report
    wanted = [(config, f"{name} @{clients}") for config in AB_CONFIGS for name, clients in EVENTS_WORKLOADS]
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| ")]
    assert [(r[0][2:], r[1]) for r in rows if len(r) == 5 and "–" in r[4]] == wanted  # B/A per round
    # Only B has a feed to follow, and its consumers got events in every run.
    followed = [r for r in rows if len(r) == 7 and r[2] in ("A", "B")]
    assert [(r[0][2:], r[1], r[2]) for r in followed] == [(c, w, "B") for c, w in wanted]
    assert all(int(r[3].replace(",", "")) > 0 for r in followed)
    verdicts = [r for r in rows if len(r) == 6 and r[5].strip(" |") in ("met", "MISSED")]
    assert [(r[0][2:], r[1], r[2].split(",")[0]) for r in verdicts] == [
        (c, w, t) for c, w in wanted for t in ("with events / without", "an event readable after its commit")]


def test_the_bench_side_without_events_writes_none_and_answers_the_same(cluster):
    """Side A of `bench --events` (EVENTS_OFF) differs from B in the events
    alone: the same calls give the same answers, and no event is written on
    any path (reserve_credit's fast path and its locked one, amendments,
    shipments, payments, releases)."""
    def play(conn) -> list:
        answers = [call(conn, "open_line", "w", "r", 100)]
        answers.append(call(conn, "reserve_credit", "w", "r", "o1", 30))  # the fast path
        answers.append(call(conn, "reserve_credit", "w", "r", "o0", 5, "1 millisecond"))
        time.sleep(0.01)
        answers.append(call(conn, "reserve_credit", "w", "r", "o2", 70))  # a hold to expire: the locked path, a sweep
        answers.append(call(conn, "reserve_credit", "w", "r", "o3", 1))  # refused
        answers.append(call(conn, "amend_reservation", "w", "r", "o1", 20, "o1-10"))
        answers.append(call(conn, "convert_to_debit", "w", "r", "o2", 30, None, "o2/1"))
        answers.append(call(conn, "release_reservation", "w", "r", "o1"))
        answers.append(call(conn, "record_payment", "w", "r", "p1", 30))
        return [{k: v for k, v in a.items() if not k.endswith("_id")} for a in answers]

    with_feed, without = cluster.create_database(), cluster.create_database()
    try:
        with psycopg.connect(cluster.dsn(with_feed), autocommit=True, row_factory=dict_row) as b, \
                psycopg.connect(cluster.dsn(without), autocommit=True, row_factory=dict_row) as a:
            a.execute(EVENTS_OFF)
            assert play(a) == play(b)
            events = "SELECT count(*) AS n FROM credit.event"
            assert a.execute(events).fetchone()["n"] == 0
            assert b.execute(events).fetchone()["n"] >= 9
            assert a.execute("SELECT count(*) AS n FROM credit.events_after(0)").fetchone()["n"] == 0
    finally:
        cluster.drop_database(with_feed)
        cluster.drop_database(without)
