"""`pgcredit status`: an operator's one screen, from the monitoring views.

Every figure is read from a credit.monitor_* view (the exporter's sources), so
the screen costs what a scrape costs plus one pass over the lines for the top
of the utilization list: O(lines), never the history. A section the user may
not read (the monitoring role sees no per-line figures) says so and the rest
is still shown.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Callable

import psycopg
from psycopg.rows import dict_row

from ..migrate import pending

TOP_LINES = 10


def _amount(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _age(seconds: float | Decimal) -> str:
    s = int(seconds)
    if s < 60:
        return f"{float(seconds):.1f}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def _section(conn: psycopg.Connection, title: str, body: Callable[[psycopg.Connection], list[str]]) -> list[str]:
    try:
        lines = body(conn)
    except psycopg.errors.InsufficientPrivilege:
        lines = [f"  (not readable by {conn.info.user}: needs credit_auditor)"]
    return [title, *lines]


def _book(conn) -> list[str]:
    rows = conn.execute("SELECT * FROM credit.monitor_book ORDER BY currency, status").fetchall()
    if not rows:
        return ["  no lines"]
    table = [["currency", "status", "lines", "credit_limit", "reserved", "outstanding", "over 90%", "max util"]]
    for r in rows:
        util = "-" if r["max_utilization_pct"] is None else f"{r['max_utilization_pct']}%"
        table.append([r["currency"], r["status"], str(r["lines"]), _amount(r["credit_limit"]),
                      _amount(r["reserved"]), _amount(r["outstanding"]), str(r["lines_over_90pct"]), util])
    return _table(table, right={2, 3, 4, 5, 6, 7})


def _refusals(conn) -> list[str]:
    rows = conn.execute("SELECT * FROM credit.monitor_refusal_windows WHERE last_1h > 0 "
                        "ORDER BY last_1h DESC, code").fetchall()
    if not rows:
        return ["  none"]
    return [f"  {r['code']:<22}{r['last_1h']:>7}   ({r['last_5m']} in the last 5 minutes)" for r in rows]


def _sweep(conn) -> list[str]:
    r = conn.execute("SELECT * FROM credit.monitor_sweep").fetchone()
    if r["holds_awaiting_sweep"] == 0:
        return ["  no hold awaits the expiry sweep"]
    return [f"  {r['holds_awaiting_sweep']} hold(s) past expiry await the sweep; the oldest expired "
            f"{_age(r['oldest_awaiting_sweep_seconds'])} ago (they no longer count as reserved)"]


def _locks(conn) -> list[str]:
    r = conn.execute("SELECT * FROM credit.monitor_lock_waits").fetchone()
    if r["waiters"] == 0:
        return ["  no one is waiting for a line lock"]
    return [f"  {r['waiters']} backend(s) waiting for a line lock; longest wait {_age(r['longest_wait_seconds'])}"]


def _reconcile(conn) -> list[str]:
    r = conn.execute("SELECT *, now() - finished_at AS ago FROM credit.monitor_reconcile").fetchone()
    if r is None:
        return ["  never run on a schedule: `pgcredit schedule` (or `pgcredit reconcile` by hand)"]
    found = ", ".join(f"{k} {v}" for k, v in sorted(r["findings_by_check"].items())) or "healthy"
    oldest = ("no active hold" if r["oldest_active_hold_age"] is None
              else f"oldest active hold {_age(r['oldest_active_hold_age'].total_seconds())}")
    return [f"  last run {_age(r['ago'].total_seconds())} ago: {r['findings']} finding(s) ({found}); {oldest}"]


def _top_lines(conn) -> list[str]:
    rows = conn.execute("SELECT * FROM credit.monitor_lines WHERE utilization_pct IS NOT NULL "
                        "ORDER BY utilization_pct DESC, line_id LIMIT %s", [TOP_LINES]).fetchall()
    if not rows:
        return ["  no line with a positive limit"]
    table = [["wholesaler/retailer", "status", "currency", "credit_limit", "reserved", "outstanding", "available",
              "utilization"]]
    for r in rows:
        table.append([f"{r['wholesaler_id']}/{r['retailer_id']}", r["status"], r["currency"],
                      _amount(r["credit_limit"]), _amount(r["reserved"]), _amount(r["outstanding"]),
                      _amount(r["available"]), f"{r['utilization_pct']}%"])
    return _table(table, right={3, 4, 5, 6, 7})


def render(conn: psycopg.Connection, dsn: str) -> tuple[str, int]:
    """The screen, and the exit code (1 when the schema is not installed)."""
    conn.row_factory = dict_row
    info = conn.execute("SELECT current_setting('server_version') AS version, "
                        "now() - pg_postmaster_start_time() AS up, now() AS at").fetchone()
    at = info["at"].astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    out = [f"pgcredit status of {conn.info.dbname} at {at}",
           f"server:    PostgreSQL {info['version']}, up {_age(info['up'].total_seconds())}"]
    proxy = conn.execute("SELECT to_regclass('credit_route.partition_config') IS NOT NULL AS p").fetchone()["p"]
    if proxy:  # a partitioned deployment's proxy (PARTITIONING.md): the figures below add up every partition
        try:
            places = conn.execute("SELECT partitions FROM credit_route.partition_config").fetchone()["partitions"]
            out.append(f"proxy in front of {len(places)} partition(s): " + "; ".join(places))
        except psycopg.errors.InsufficientPrivilege:
            out.append("proxy in front of partitions (the list is readable by credit_owner)")
    else:
        # yoyo, on finding its tables unreadable, waits 10 s for its lock
        # before it fails: a role that cannot read them is answered at once.
        unreadable = conn.execute(
            "SELECT t FROM unnest(ARRAY['_yoyo_migration', '_yoyo_version']) t "
            "WHERE to_regclass(t) IS NOT NULL AND NOT has_table_privilege(to_regclass(t), 'SELECT') "
            "LIMIT 1").fetchone()
        try:
            if unreadable:
                out.append(f"migrations pending: unknown ({conn.info.user}: permission denied for table "
                           f"{unreadable['t']})")
            else:
                todo = pending(dsn)
                out.append(f"migrations pending: {', '.join(todo) if todo else 'none'}")
        except psycopg.Error as exc:  # e.g. the monitoring role may not read yoyo's tables
            out.append(f"migrations pending: unknown ({conn.info.user}: {exc.diag.message_primary or exc})")
    if not proxy and conn.execute("SELECT to_regclass('credit.line') IS NULL AS missing").fetchone()["missing"]:
        out.append("schema credit is not installed: run `pgcredit migrate`")
        return "\n".join(out) + "\n", 1
    out += [""]
    for title, body in (("book (per currency and line status)", _book),
                        ("refusals in the last hour, by code", _refusals),
                        ("expiry", _sweep),
                        ("line locks", _locks),
                        ("reconcile (scheduled)", _reconcile),
                        (f"top {TOP_LINES} lines by utilization", _top_lines)):
        out += _section(conn, title, body)
    return "\n".join(out) + "\n", 0
