"""`pgcredit status`: the operator's screen, its numbers, and --watch."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from support.db import MONITOR_USER, call
from pgcredit.tools.cli import main


def _activity(conn) -> None:
    call(conn, "open_line", "acme", "corner", 1000)
    call(conn, "reserve_credit", "acme", "corner", "o1", 950)
    call(conn, "reserve_credit", "acme", "corner", "o2", 100)       # insufficient_credit
    call(conn, "open_line", "acme", "kiosk", 2000, "USD")
    call(conn, "reserve_credit", "acme", "kiosk", "k1", 500)
    call(conn, "convert_to_debit", "acme", "kiosk", "k1")
    call(conn, "open_line", "acme", "stall", 100)
    call(conn, "reserve_credit", "acme", "stall", "s1", 10, "1 second")
    call(conn, "block_line", "acme", "stall", "checks")
    call(conn, "reserve_credit", "acme", "stall", "s2", 5)           # line_blocked
    call(conn, "reserve_credit", "acme", "nobody", "n1", 5)          # line_not_found
    call(conn, "reserve_credit", "acme", "nobody", "n2", 5)          # line_not_found
    conn.execute("SELECT credit.record_reconcile()")
    time.sleep(1.1)  # s1 expires, unswept


def _section(out: str, title: str) -> str:
    """The lines under a section title, up to the next unindented line."""
    lines = out.splitlines()
    start = lines.index(title) + 1
    body = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        body.append(line)
    return "\n".join(body)


def test_status_shows_every_section_with_its_numbers(cluster, dbname, dsn, conn, capsys):
    _activity(conn)
    holder = psycopg.connect(dsn)
    holder.execute("SELECT * FROM credit.reserve_credit('acme', 'kiosk', 'held', 1)")  # kiosk locked

    def wait():
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SET credit.lock_timeout = '30s'")
            c.execute("SELECT * FROM credit.reserve_credit('acme', 'kiosk', 'queued', 1)")

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        while conn.execute("SELECT waiters FROM credit.monitor_lock_waits").fetchone()["waiters"] < 1:
            time.sleep(0.05)
        time.sleep(0.2)
        assert main(["status", "--dsn", dsn]) == 0
    finally:
        holder.commit()
        holder.close()
        waiter.join()
    out = capsys.readouterr().out
    assert out.startswith(f"pgcredit status of {dbname} at ")
    assert re.search(r"^server:    PostgreSQL \d+", out, re.M)
    assert "migrations pending: none" in out

    book = _section(out, "book (per currency and line status)").splitlines()
    assert re.split(r"\s{2,}", book[1].strip()) == ["INR", "active", "1", "1,000.00", "950.00", "0.00", "1", "95.00%"]
    assert re.split(r"\s{2,}", book[2].strip()) == ["INR", "blocked", "1", "100.00", "0.00", "0.00", "0", "0.00%"]
    assert re.split(r"\s{2,}", book[3].strip()) == ["USD", "active", "1", "2,000.00", "0.00", "500.00", "0", "25.00%"]

    refusals = _section(out, "refusals in the last hour, by code").splitlines()
    assert [line.split()[:2] for line in refusals] == [["line_not_found", "2"], ["insufficient_credit", "1"],
                                                        ["line_blocked", "1"]]
    assert "(2 in the last 5 minutes)" in refusals[0]
    assert "1 hold(s) past expiry await the sweep; the oldest expired" in _section(out, "expiry")
    assert re.search(r"1 backend\(s\) waiting for a line lock; longest wait \d+\.\ds", _section(out, "line locks"))
    assert re.search(r"last run \d+\.\ds ago: 0 finding\(s\) \(healthy\); oldest active hold \d+\.\ds",
                     _section(out, "reconcile (scheduled)"))
    top = _section(out, "top 10 lines by utilization").splitlines()
    assert [row.split()[0] for row in top[1:]] == ["acme/corner", "acme/kiosk", "acme/stall"]
    assert re.split(r"\s{2,}", top[1].strip()) == ["acme/corner", "active", "INR", "1,000.00", "950.00", "0.00",
                                                   "50.00", "95.00%"]


def test_status_after_trouble(conn, dsn, capsys):
    """No run yet, nothing waiting; then a reconcile finding shows by check."""
    call(conn, "open_line", "w", "r", 10)
    assert main(["status", "--dsn", dsn]) == 0
    out = capsys.readouterr().out
    assert "never run on a schedule: `pgcredit schedule`" in out
    assert "no one is waiting for a line lock" in out and "no hold awaits the expiry sweep" in out
    assert _section(out, "refusals in the last hour, by code") == "  none"
    conn.execute("UPDATE credit.line SET reserved = 3")
    conn.execute("SELECT credit.record_reconcile()")
    assert main(["status", "--dsn", dsn]) == 0
    assert "1 finding(s) (reserved_total 1); no active hold" in capsys.readouterr().out


def test_status_as_the_monitoring_role_skips_per_line_figures(cluster, dbname, conn, capsys):
    call(conn, "open_line", "w", "r", 10)
    assert main(["status", "--dsn", cluster.dsn(dbname, user=MONITOR_USER)]) == 0
    out = capsys.readouterr().out
    assert "migrations pending: unknown (test_monitor_login: permission denied" in out
    assert _section(out, "top 10 lines by utilization") == \
        f"  (not readable by {MONITOR_USER}: needs credit_auditor)"
    assert "INR" in _section(out, "book (per currency and line status)")


def test_watch_refreshes_until_interrupted(dsn, conn, tmp_path):
    call(conn, "open_line", "w", "r", 10)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    screen = tmp_path / "screen"

    def frames() -> list[str]:
        return screen.read_text().split("\x1b[H\x1b[2J")[1:]

    with open(screen, "w") as stdout:
        # SIGINT restored: a suite started in the background inherits it ignored.
        proc = subprocess.Popen([sys.executable, "-m", "pgcredit", "status", "--dsn", dsn, "--watch", "0.2"],
                                stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 60
            while not any("Ctrl-C to stop" in f for f in frames()) and time.monotonic() < deadline:
                time.sleep(0.05)
            call(conn, "open_line", "w", "r2", 10)   # the next frames show it
            seen = len(frames())
            while len(frames()) < seen + 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, err
    complete = [f for f in frames() if "(every 0.2 s; Ctrl-C to stop)" in f]
    assert len(complete) >= 4
    lines_shown = [re.search(r"INR\s+active\s+(\d+)", f).group(1) for f in complete]
    assert lines_shown[0] == "1" and lines_shown[-1] == "2"


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "soon"])
def test_watch_needs_a_positive_interval(dsn, bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["status", "--dsn", dsn, "--watch", bad])
    assert exc.value.code == 2
