"""The real postgres_exporter (Debian prometheus-postgres-exporter) with
ops/postgres_exporter/queries.yaml, logged in as a member of credit_monitor
only, on a loopback port of its own: known activity in, /metrics scraped, and
every pgcredit_ value equal to what the SQL says."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.request
from decimal import Decimal

import psycopg
import pytest

from support.db import MONITOR_USER, call
from support.ops_tools import OPS, free_port, parse_metrics, tool

QUERIES = OPS / "postgres_exporter" / "queries.yaml"


class Exporter:
    def __init__(self, binary: str, dsn: str, log):
        for _ in range(5):  # a port found free may be taken before the exporter binds it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [binary, f"--web.listen-address=127.0.0.1:{self.port}", f"--extend.query-path={QUERIES}",
                 # Only pgcredit's queries: the exporter's own server metrics need pg_monitor,
                 # which this login does not have (OPERATIONS.md).
                 "--disable-default-metrics", "--disable-settings-metrics",
                 "--no-collector.database", "--no-collector.bgwriter", "--log.level=warn"],
                env={**os.environ, "DATA_SOURCE_NAME": dsn}, stdout=log, stderr=log)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
                    return
                except OSError:
                    time.sleep(0.1)
            self.stop()
        raise RuntimeError("postgres_exporter did not start")

    def scrape(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return parse_metrics(r.read().decode())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def exporter(cluster, dbname, tmp_path):
    binary = tool("prometheus-postgres-exporter", "postgres_exporter", package="prometheus-postgres-exporter")
    p = cluster.params
    dsn = f"host={p['host']} port={p['port']} user={MONITOR_USER} dbname={dbname} sslmode=disable"
    log_path = tmp_path / "exporter.log"
    with open(log_path, "w") as log:
        e = Exporter(binary, dsn, log)
        e.log = log_path
        yield e
        e.stop()


def pgcredit_samples(samples: dict) -> dict[tuple[str, frozenset], float]:
    """pgcredit_* samples without the exporter's own `server` label."""
    return {(name, frozenset(kv for kv in labels if kv[0] != "server")): v
            for (name, labels), v in samples.items() if name.startswith("pgcredit_")}


def key(name: str, **labels) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def _drive(conn) -> None:
    """Known activity: two currencies, debt, a blocked line, refusals of three
    codes (one backdated), holds past expiry, and a reconcile run with a finding."""
    call(conn, "open_line", "w", "a", 1000)
    call(conn, "reserve_credit", "w", "a", "a1", 950)
    call(conn, "reserve_credit", "w", "a", "a2", 100)          # insufficient_credit
    call(conn, "reserve_credit", "w", "a", "a3", 60)           # insufficient_credit
    call(conn, "open_line", "w", "b", 500)
    call(conn, "reserve_credit", "w", "b", "b1", 200)
    call(conn, "convert_to_debit", "w", "b", "b1")
    call(conn, "record_payment", "w", "b", "p1", 50)
    call(conn, "open_line", "w", "c", 300, "USD")
    call(conn, "reserve_credit", "w", "c", "c1", 300)
    call(conn, "convert_to_debit", "w", "c", "c1", None, "2000-01-01")  # long past due
    call(conn, "block_line", "w", "c", "late payer")
    call(conn, "reserve_credit", "w", "c", "c2", 1)            # line_blocked
    call(conn, "reserve_credit", "w", "nobody", "n1", 1)       # line_not_found
    conn.execute("INSERT INTO credit.refusal (created_at, wholesaler_id, retailer_id, order_ref, amount, code)"
                 " VALUES (now() - interval '20 minutes', 'w', 'a', 'old', 5, 'insufficient_credit')")
    call(conn, "open_line", "w", "e", 100)
    call(conn, "reserve_credit", "w", "e", "e1", 10, "1 second")
    call(conn, "reserve_credit", "w", "e", "e2", 20, "1 second")
    call(conn, "open_line", "w", "f", 100)
    conn.execute("UPDATE credit.line SET outstanding = outstanding + 7 WHERE retailer_id = 'f'")  # a finding
    conn.execute("SELECT credit.record_reconcile()")
    time.sleep(1.1)  # e1 and e2 are now past expiry, awaiting a sweep


def _sql_expected(conn) -> dict[tuple[str, frozenset], float]:
    """What the SQL says, in the exporter's names (time-dependent values aside)."""
    out = {}
    for r in conn.execute("SELECT * FROM credit.monitor_book"):
        labels = {"currency": r["currency"], "status": r["status"]}
        out[key("pgcredit_lines", **labels)] = r["lines"]
        out[key("pgcredit_credit_limit_amount", **labels)] = r["credit_limit"]
        out[key("pgcredit_reserved_amount", **labels)] = r["reserved"]
        out[key("pgcredit_outstanding_amount", **labels)] = r["outstanding"]
        out[key("pgcredit_past_due_amount", **labels)] = r["past_due"]
        out[key("pgcredit_lines_over_90pct_utilization", **labels)] = r["lines_over_90pct"]
        out[key("pgcredit_max_utilization_percent", **labels)] = r["max_utilization_pct"] or 0
    for r in conn.execute("SELECT * FROM credit.monitor_refusal_windows"):
        out[key("pgcredit_refusals_last_5m", code=r["code"])] = r["last_5m"]
        out[key("pgcredit_refusals_last_1h", code=r["code"])] = r["last_1h"]
    out[key("pgcredit_holds_awaiting_sweep")] = \
        conn.execute("SELECT holds_awaiting_sweep FROM credit.monitor_sweep").fetchone()["holds_awaiting_sweep"]
    out[key("pgcredit_line_lock_waiters")] = \
        conn.execute("SELECT waiters FROM credit.monitor_lock_waits").fetchone()["waiters"]
    out[key("pgcredit_events_waiting")] = \
        conn.execute("SELECT events_waiting FROM credit.monitor_events").fetchone()["events_waiting"]
    run = conn.execute("SELECT extract(epoch FROM finished_at) AS ts, extract(epoch FROM finished_at - started_at) AS d,"
                       " findings, extract(epoch FROM oldest_active_hold_age) AS age, findings_by_check"
                       " FROM credit.monitor_reconcile").fetchone()
    out[key("pgcredit_reconcile_last_run_timestamp_seconds")] = run["ts"]
    out[key("pgcredit_reconcile_duration_seconds")] = run["d"]
    out[key("pgcredit_reconcile_findings")] = run["findings"]
    out[key("pgcredit_reconcile_oldest_active_hold_age_seconds")] = run["age"]
    for check, n in run["findings_by_check"].items():
        out[key("pgcredit_reconcile_check_findings", check=check)] = n
    return {k: float(Decimal(v)) for k, v in out.items()}


def _seconds(conn) -> dict[str, float]:
    return {
        "pgcredit_holds_oldest_awaiting_sweep_seconds": float(conn.execute(
            "SELECT oldest_awaiting_sweep_seconds AS s FROM credit.monitor_sweep").fetchone()["s"]),
        "pgcredit_line_lock_longest_wait_seconds": float(conn.execute(
            "SELECT longest_wait_seconds AS s FROM credit.monitor_lock_waits").fetchone()["s"]),
        "pgcredit_events_oldest_waiting_seconds": float(conn.execute(
            "SELECT oldest_waiting_seconds AS s FROM credit.monitor_events").fetchone()["s"]),
    }


def _wait_for_line(dsn: str, errors: list) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET credit.lock_timeout = '30s'")
        try:
            c.execute("SELECT * FROM credit.reserve_credit('w', 'b', 'b-queued', 1)")
        except psycopg.Error as exc:
            errors.append(exc)


def test_exporter_reports_what_the_sql_says(exporter, conn, dsn):
    _drive(conn)
    holder = psycopg.connect(dsn)
    errors: list = []
    waiter = threading.Thread(target=_wait_for_line, args=(dsn, errors))
    try:
        holder.execute("SELECT * FROM credit.reserve_credit('w', 'b', 'b-held', 1)")  # holds b's row lock
        waiter.start()
        while conn.execute("SELECT waiters FROM credit.monitor_lock_waits").fetchone()["waiters"] < 1:
            time.sleep(0.05)
        time.sleep(0.3)
        expected = _sql_expected(conn)
        before = _seconds(conn)
        raw = exporter.scrape()
        after = _seconds(conn)
        assert _sql_expected(conn) == expected  # nothing moved while the exporter read
    finally:
        holder.commit()
        holder.close()
        waiter.join()
    assert errors == []

    assert raw[("pg_up", frozenset())] == 1
    assert raw[("pg_exporter_last_scrape_error", frozenset())] == 0, exporter.log.read_text()
    got = pgcredit_samples(raw)
    for name in before:
        value = got.pop(key(name))
        assert before[name] <= value <= after[name], (name, before[name], value, after[name])
    assert got == expected

    # And the SQL says what the activity was, by hand.
    assert expected[key("pgcredit_lines", currency="INR", status="active")] == 4
    assert expected[key("pgcredit_lines", currency="USD", status="blocked")] == 1
    assert expected[key("pgcredit_reserved_amount", currency="INR", status="active")] == 950
    assert expected[key("pgcredit_outstanding_amount", currency="INR", status="active")] == 157
    assert expected[key("pgcredit_outstanding_amount", currency="USD", status="blocked")] == 300
    assert expected[key("pgcredit_lines_over_90pct_utilization", currency="INR", status="active")] == 1
    assert expected[key("pgcredit_lines_over_90pct_utilization", currency="USD", status="blocked")] == 1
    assert expected[key("pgcredit_max_utilization_percent", currency="INR", status="active")] == 95
    assert expected[key("pgcredit_refusals_last_5m", code="insufficient_credit")] == 2
    assert expected[key("pgcredit_refusals_last_1h", code="insufficient_credit")] == 3
    assert expected[key("pgcredit_refusals_last_5m", code="line_blocked")] == 1
    assert expected[key("pgcredit_refusals_last_5m", code="line_not_found")] == 1
    assert expected[key("pgcredit_refusals_last_1h", code="overdue")] == 0
    assert expected[key("pgcredit_holds_awaiting_sweep")] == 2
    assert expected[key("pgcredit_line_lock_waiters")] == 1
    assert expected[key("pgcredit_events_waiting")] > 10  # every change's event: nothing reads the feed here
    assert expected[key("pgcredit_past_due_amount", currency="USD", status="blocked")] == 300
    assert expected[key("pgcredit_past_due_amount", currency="INR", status="active")] == 0
    # The corrupted total breaks outstanding_total and the allocation identity.
    assert expected[key("pgcredit_reconcile_findings")] == 2
    assert expected[key("pgcredit_reconcile_check_findings", check="outstanding_total")] == 1
    assert expected[key("pgcredit_reconcile_check_findings", check="allocation_identity")] == 1
    assert after["pgcredit_holds_oldest_awaiting_sweep_seconds"] >= 0.1
    assert after["pgcredit_line_lock_longest_wait_seconds"] >= 0.3


def test_every_pgcredit_metric_has_help_and_a_low_cardinality_name(exporter, conn):
    _drive(conn)
    with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE pgcredit_")}
    helps = {line.split()[2]: line for line in text.splitlines() if line.startswith("# HELP pgcredit_")}
    assert len(families) == 20
    for family in families:
        assert len(helps[family].split(None, 3)[3]) > 20, family
        assert not family.endswith("_total")  # gauges here; counters come from the client (pgcredit.metrics)
    labels = {k for (name, pairs) in parse_metrics(text) if name.startswith("pgcredit_") for k, _ in pairs}
    assert labels == {"server", "currency", "status", "code", "check"}


def test_unmigrated_database_is_a_scrape_error_not_silence(cluster, tmp_path):
    """Queries against a database without the schema fail visibly."""
    binary = tool("prometheus-postgres-exporter", "postgres_exporter", package="prometheus-postgres-exporter")
    empty = cluster.create_database(template=None)
    p = cluster.params
    try:
        with open(tmp_path / "exporter.log", "w") as log:
            e = Exporter(binary, f"host={p['host']} port={p['port']} user={MONITOR_USER} dbname={empty}"
                                 " sslmode=disable", log)
            try:
                raw = e.scrape()
            finally:
                e.stop()
        assert raw[("pg_exporter_last_scrape_error", frozenset())] == 1
        assert not pgcredit_samples(raw)
    finally:
        cluster.drop_database(empty)
