"""Least privilege, pinned search_path, ownership and the append-only ledger."""

from __future__ import annotations

import psycopg
import pytest

from support.db import API, APP_USER, AUDITOR_USER, MONITOR_USER, call

TABLES = ["line", "line_event", "reservation", "ledger_entry", "refusal", "currency", "open_item", "settlement",
          "event", "event_state"]
VIEWS = ["line_summary", "monitor_totals", "monitor_refusals", "monitor_lines", "monitor_book",
         "monitor_refusal_windows", "monitor_sweep", "monitor_lock_waits", "monitor_reconcile", "monitor_events"]
# What the exporter's queries read (ops/postgres_exporter/queries.yaml): aggregates, no retailer ids.
MONITOR_VIEWS = ["monitor_book", "monitor_refusal_windows", "monitor_sweep", "monitor_lock_waits",
                 "monitor_reconcile", "monitor_events"]


def _as(cluster, dbname, user):
    return psycopg.connect(cluster.dsn(dbname, user=user), autocommit=True)


def test_app_calls_the_api_and_touches_no_table(cluster, dbname):
    with _as(cluster, dbname, APP_USER) as app:
        assert call(app, "open_line", "w", "r", 100)["code"] == "ok"
        assert call(app, "reserve_credit", "w", "r", "o", 10)["code"] == "ok"
        for table in TABLES:
            for stmt in (f"SELECT 1 FROM credit.{table}", f"DELETE FROM credit.{table}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    app.execute(stmt)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT credit._sweep_line(1, NULL)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM credit.line_summary")


def test_auditor_reads_views_reconcile_and_statement_only(cluster, dbname):
    with _as(cluster, dbname, AUDITOR_USER) as aud:
        for view in VIEWS:
            aud.execute(f"SELECT * FROM credit.{view}").fetchall()
        assert aud.execute("SELECT count(*) FROM credit.reconcile()").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            aud.execute("SELECT * FROM credit.reserve_credit('w', 'r', 'o', 1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            aud.execute("SELECT 1 FROM credit.ledger_entry")


def test_monitor_reads_its_views_and_nothing_else(cluster, dbname):
    with _as(cluster, dbname, MONITOR_USER) as mon:
        for view in MONITOR_VIEWS:
            mon.execute(f"SELECT * FROM credit.{view}").fetchall()
        for relation in TABLES + ["reconcile_run"] + [v for v in VIEWS if v not in MONITOR_VIEWS]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                mon.execute(f"SELECT 1 FROM credit.{relation}")
        for stmt in ("SELECT * FROM credit.reserve_credit('w', 'r', 'o', 1)", "SELECT * FROM credit.reconcile()",
                     "SELECT credit.record_reconcile()", "SELECT credit.expire_reservations()"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                mon.execute(stmt)


def test_monitor_role_may_execute_only_what_its_views_call(conn):
    rows = conn.execute("""
        SELECT DISTINCT p.proname FROM pg_proc p
         WHERE p.pronamespace = 'credit'::regnamespace
           AND has_function_privilege('credit_monitor', p.oid, 'EXECUTE')""").fetchall()
    assert sorted(r["proname"] for r in rows) == ["_active_limit", "_reserved_now"]
    assert conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'credit_monitor'").fetchone() \
        == {"rolcanlogin": False, "rolsuper": False}
    # No predefined role either (pg_monitor and the like): the DBA grants pg_monitor to the
    # exporter's login only if it keeps the exporter's own server metrics (OPERATIONS.md).
    assert conn.execute("SELECT count(*) AS n FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                        "WHERE r.rolname = 'credit_monitor'").fetchone() == {"n": 0}


def test_public_gets_nothing(conn):
    conn.execute("CREATE ROLE nobody_in_particular")
    try:
        callable_ = conn.execute("""
            SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
             WHERE p.pronamespace = 'credit'::regnamespace
               AND has_function_privilege('nobody_in_particular', p.oid, 'EXECUTE')""").fetchall()
        assert callable_ == []
        assert not conn.execute("SELECT has_schema_privilege('nobody_in_particular', 'credit', 'USAGE') AS u"
                                ).fetchone()["u"]
        # Functions added later start closed too (default privileges).
        conn.execute("SET ROLE credit_owner")
        conn.execute("CREATE FUNCTION credit.later() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("RESET ROLE")
        assert not conn.execute("SELECT has_function_privilege('nobody_in_particular', 'credit.later()', "
                                "'EXECUTE') AS x").fetchone()["x"]
    finally:
        conn.execute("DROP ROLE nobody_in_particular")


def test_app_may_execute_exactly_the_api(conn):
    rows = conn.execute("""
        SELECT DISTINCT p.proname FROM pg_proc p
         WHERE p.pronamespace = 'credit'::regnamespace
           AND has_function_privilege('credit_app', p.oid, 'EXECUTE')""").fetchall()
    assert sorted(r["proname"] for r in rows) == sorted(API)


def test_auditor_may_execute_only_its_reads(conn):
    rows = conn.execute("""
        SELECT DISTINCT p.proname FROM pg_proc p
         WHERE p.pronamespace = 'credit'::regnamespace
           AND has_function_privilege('credit_auditor', p.oid, 'EXECUTE')""").fetchall()
    # _reserved_now, _active_limit: the views call them, and a view
    # checks function privileges against its reader.
    assert sorted(r["proname"] for r in rows) == [
        "_active_limit", "_reserved_now", "aging", "events_after", "get_reservation", "list_lines",
        "list_reservations", "reconcile", "statement"]


def test_security_definer_functions_pin_search_path(conn):
    rows = conn.execute("""
        SELECT p.oid::regprocedure::text AS fn, p.proconfig FROM pg_proc p
         WHERE p.pronamespace = 'credit'::regnamespace AND p.prosecdef""").fetchall()
    assert {r["fn"].split("(")[0] for r in rows} >= {f"credit.{f}" for f in API}
    for r in rows:
        # The only other setting a function may carry is its bound on lock waits.
        assert r["proconfig"] in (["search_path=pg_catalog, pg_temp"],
                                  ["search_path=pg_catalog, pg_temp", "lock_timeout=2s"]), r["fn"]


def test_everything_belongs_to_credit_owner(conn):
    owners = conn.execute("""
        SELECT 'function ' || p.oid::regprocedure AS obj, pg_get_userbyid(p.proowner) AS owner
          FROM pg_proc p WHERE p.pronamespace = 'credit'::regnamespace
        UNION ALL
        SELECT 'relation ' || c.oid::regclass, pg_get_userbyid(c.relowner)
          FROM pg_class c WHERE c.relnamespace = 'credit'::regnamespace
        UNION ALL
        SELECT 'type ' || t.oid::regtype, pg_get_userbyid(t.typowner)
          FROM pg_type t WHERE t.typnamespace = 'credit'::regnamespace
        UNION ALL
        SELECT 'schema credit', pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'credit'
    """).fetchall()
    assert len(owners) > 40
    assert [o for o in owners if o["owner"] != "credit_owner"] == []
    assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'credit_owner'").fetchone() == \
        {"rolcanlogin": False}


def test_no_dynamic_sql(conn):
    rows = conn.execute(r"""
        SELECT p.proname FROM pg_proc p
         WHERE p.pronamespace = 'credit'::regnamespace AND p.prosrc ~* '\mEXECUTE\M'""").fetchall()
    assert rows == []


@pytest.mark.parametrize("table", ["ledger_entry", "line_event", "settlement", "amendment"])
@pytest.mark.parametrize("stmt", ["UPDATE credit.{t} SET created_at = now()", "DELETE FROM credit.{t}",
                                  "TRUNCATE credit.{t} CASCADE"])
@pytest.mark.parametrize("who", ["superuser", "credit_owner", "replica_mode"])
def test_history_is_append_only_for_everyone(conn, table, stmt, who):
    call(conn, "open_line", "w", "r", 100)
    call(conn, "adjust_balance", "w", "r", "fee", 5, "late fee")
    call(conn, "record_payment", "w", "r", "p", 5)  # settles the fee: one settlement row
    call(conn, "reserve_credit", "w", "r", "o", 10)
    call(conn, "amend_reservation", "w", "r", "o", 20, "o+10")  # one amendment row
    before = conn.execute(f"SELECT count(*) FROM credit.{table}").fetchone()["count"]
    if who == "credit_owner":
        conn.execute("SET ROLE credit_owner")
    elif who == "replica_mode":  # ordinary triggers do not fire in this mode
        conn.execute("SET session_replication_role = replica")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="never changed or removed"):
        conn.execute(stmt.format(t=table))
    conn.execute("RESET ROLE")
    conn.execute("RESET session_replication_role")
    assert conn.execute(f"SELECT count(*) FROM credit.{table}").fetchone()["count"] == before > 0


@pytest.mark.parametrize("stmt", ["DELETE FROM credit.line", "TRUNCATE credit.line CASCADE"])
def test_lines_are_never_deleted(conn, stmt):
    call(conn, "open_line", "w", "r", 100)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="never changed or removed"):
        conn.execute(stmt)
    assert conn.execute("SELECT count(*) FROM credit.line").fetchone()["count"] == 1
