"""The partitioned deployment (PL/Proxy): set-up and its refusals, ids unique
across partitions, reads merged from every partition, errors as a single
server gives them, least privilege on the proxy, batches split by partition,
a partition that stops and comes back, and T1's history checker through the
proxy. The contract tests (test_sql_api, test_client, test_receivables,
test_readme) also run through a proxy: see conftest.py."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import importlib.util
import io
import re
import subprocess
import sys
import tarfile
import time
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

import pgcredit as pc
from support.db import API, APP_USER, AUDITOR_USER, PARTITIONS, call, private_server
from pgcredit import CreditClient, Retry, migrate
from pgcredit.tools.cli import main
from pgcredit.tools.reference import read_catalog, render
from pgcredit.migrate import IsAProxy
from pgcredit.partitions import PartitionSetupError, location, migrate_partitions, partition_of
from support.reliability import (
    check_t1, contention, contention_report, database_violations, history_violations, order_contention,
    order_contention_report, order_violations, report, unlock_reserve_credit,
)

W = "w"
FAST = Retry(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def proxy(proxy_spares):
    p = proxy_spares.take()
    yield p
    proxy_spares.later(p.drop)


@pytest.fixture
def px(proxy):
    with psycopg.connect(proxy.dsn, autocommit=True, row_factory=dict_row) as c:
        yield c


@pytest.fixture
def parts(proxy):
    """A connection to each partition, for looking behind the proxy."""
    conns = [psycopg.connect(d, autocommit=True, row_factory=dict_row) for d in proxy.partition_dsns()]
    yield conns
    for c in conns:
        c.close()


def retailers_by_partition(px, per: int = 1, prefix: str = "r", wholesaler: str = W) -> list[list[str]]:
    """`per` retailer ids whose lines the proxy places on each partition."""
    found: list[list[str]] = [[] for _ in range(PARTITIONS)]
    n = 0
    while min(len(f) for f in found) < per:
        r = f"{prefix}{n}"
        p = partition_of(px, wholesaler, r)
        if len(found[p]) < per:
            found[p].append(r)
        n += 1
    return found


def fresh_databases(cluster, n: int) -> list[str]:
    return [cluster.create_database(template=None) for _ in range(n)]


# -- Set-up -------------------------------------------------------------------------

def test_setup_strides_ids_and_migrating_again_changes_nothing(cluster, proxy_templates):
    names = fresh_databases(cluster, PARTITIONS + 1)
    proxy_dsn, dsns = cluster.dsn(names[0]), [cluster.dsn(n) for n in names[1:]]
    try:
        first = migrate_partitions(proxy_dsn, dsns)
        with psycopg.connect(dsns[0]) as conn:
            views = conn.execute("SELECT count(*) FROM pg_views WHERE schemaname = 'credit'").fetchone()[0]
        # + record_reconcile and prune_events, the owner's
        assert first.layer_changed and first.functions == len(API) + 2 and first.views == views
        with psycopg.connect(proxy_dsn, autocommit=True) as conn:
            catalog = "SELECT md5(string_agg(p.oid::text || ':' || p.xmin::text, ',' ORDER BY p.oid)) FROM pg_proc p " \
                      "WHERE p.pronamespace IN ('credit'::regnamespace, 'credit_route'::regnamespace)"
            before = conn.execute(catalog).fetchone()[0]
            again = migrate_partitions(proxy_dsn, dsns)
            assert not again.layer_changed and all(r.applied == [] for r in again.partitions)
            assert conn.execute(catalog).fetchone()[0] == before  # not one function was even replaced
        for i, dsn in enumerate(dsns):
            with psycopg.connect(dsn) as conn:
                assert conn.execute("SELECT partition_index, partition_count FROM credit.partition_config"
                                    ).fetchone() == (i, PARTITIONS)
                # The feed's sequence numbers a partition's own events: not an id unique across partitions.
                strides = conn.execute("SELECT DISTINCT seqincrement, seqstart FROM pg_sequence s JOIN pg_class c "
                                       "ON c.oid = s.seqrelid WHERE c.relnamespace = 'credit'::regnamespace "
                                       "AND c.relname <> 'event_id_seq'").fetchall()
                assert strides == [(PARTITIONS, i + 1)]
    finally:
        for n in names:
            cluster.drop_database(n)


def test_ids_are_unique_across_partitions(px, parts):
    seen = collections.defaultdict(set)
    for p, retailers in enumerate(retailers_by_partition(px, per=2)):
        for r in retailers:
            line = call(px, "open_line", W, r, 1000)
            held = call(px, "reserve_credit", W, r, "o1", 10)
            debit = call(px, "convert_to_debit", W, r, "o1")
            paid = call(px, "record_payment", W, r, "p1", 5)
            for kind, value in (("line", line["line_id"]), ("reservation", held["reservation_id"]),
                                ("entry", debit["ledger_entry_id"]), ("entry", paid["ledger_entry_id"])):
                assert value % PARTITIONS == (p + 1) % PARTITIONS, (kind, value, p)  # partition p's stride
                assert value not in seen[kind]
                seen[kind].add(value)
            # The line is where the proxy says, and only there.
            homes = [i for i, c in enumerate(parts)
                     if c.execute("SELECT FROM credit.line WHERE retailer_id = %s", [r]).rowcount]
            assert homes == [p]
    assert len(seen["reservation"]) == 2 * PARTITIONS and len(seen["entry"]) == 4 * PARTITIONS


REPO = Path(__file__).resolve().parents[2]
# The last commit whose sql/proxy files created the proxy's and the
# partitions' tables themselves, before those became migrations.
BEFORE_MIGRATIONS = "24af03f"


def deployment_of(rev: str, dest: Path):
    """The sql/ tree and the partitions module as they were at `rev`."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "sql"], capture_output=True)
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:client/pgcredit/partitions.py"],
                            capture_output=True)
    if tar.returncode or source.returncode:
        pytest.skip(f"git history of {rev} is unavailable ({(tar.stderr or source.stderr).decode().strip()}): "
                    "the earlier deployment cannot be rebuilt")
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (dest / "partitions.py").write_bytes(source.stdout)
    spec = importlib.util.spec_from_file_location(f"pgcredit._partitions_{rev}", dest / "partitions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return dest / "sql", module


def table_definition(cluster, dbname: str, table: str) -> str:
    out = subprocess.run([str(cluster.bin / "pg_dump"), "--schema-only", "-t", table, cluster.dsn(dbname)],
                         capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines()
                     if line and not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\")))


def test_a_deployment_set_up_before_the_proxy_migrations_migrates_and_still_routes(cluster, proxy_templates,
                                                                                    tmp_path):
    old_sql, old = deployment_of(BEFORE_MIGRATIONS, tmp_path)
    names = fresh_databases(cluster, PARTITIONS + 1)
    proxy_dsn, dsns = cluster.dsn(names[0]), [cluster.dsn(n) for n in names[1:]]
    try:
        old.migrate_partitions(proxy_dsn, dsns, root=old_sql)
        with psycopg.connect(proxy_dsn, autocommit=True, row_factory=dict_row) as px:
            assert px.execute("SELECT to_regclass('public._yoyo_migration') IS NULL AS old").fetchone()["old"]
            before = px.execute("SELECT partitions, hash_fingerprint FROM credit_route.partition_config").fetchone()
            lines = [r for rs in retailers_by_partition(px) for r in rs]
            for r in lines:
                call(px, "open_line", W, r, 1000)
                assert call(px, "reserve_credit", W, r, "o1", 10)["code"] == "ok"

        report = migrate_partitions(proxy_dsn, dsns)
        assert report.layer_changed and report.proxy_applied == ["proxy_0001_create_proxy_schema"]
        # After the single server's migrations made since (none, or a later release's).
        assert all(r.applied[-1:] == ["partition_0001_create_partition_config"] for r in report.partitions)

        with psycopg.connect(proxy_dsn, autocommit=True, row_factory=dict_row) as px:
            assert px.execute("SELECT partitions, hash_fingerprint FROM credit_route.partition_config"
                              ).fetchone() == before
            for p, r in enumerate(lines):
                assert partition_of(px, W, r) == p
                assert call(px, "get_available", W, r)["reserved"] == 10
                assert call(px, "reserve_credit", W, r, "o1", 10)["replayed"]
                assert call(px, "reserve_credit", W, r, "o2", 20)["code"] == "ok"
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="amount"):
                call(px, "reserve_credit", W, lines[1], "o3", -1)
            assert px.execute("SELECT * FROM credit.reconcile()").fetchall() == []
        again = migrate_partitions(proxy_dsn, dsns)
        assert not again.layer_changed and again.proxy_applied == [] and all(
            r.applied == [] for r in again.partitions)
        # The tables are those a deployment set up by this release has.
        assert table_definition(cluster, names[0], "credit_route.partition_config") == table_definition(
            cluster, proxy_templates.name, "credit_route.partition_config")
        assert table_definition(cluster, names[1], "credit.partition_config") == table_definition(
            cluster, proxy_templates.partitions[0], "credit.partition_config")
    finally:
        for n in names:
            cluster.drop_database(n)


def test_a_changed_partition_list_is_refused(proxy, px, capsys):
    dsns = proxy.partition_dsns()
    before = px.execute("SELECT * FROM credit_route.partition_config").fetchone()
    for changed in (dsns[::-1], dsns[:2], dsns[:3] + [proxy.cluster.dsn("postgres")]):
        with pytest.raises(PartitionSetupError, match="fixed once set"):
            migrate_partitions(proxy.dsn, changed)
    assert main(["migrate", "--dsn", proxy.dsn, "--partitions", ",".join(dsns[::-1])]) == 2
    err = capsys.readouterr().err
    assert "the partition list is fixed once set" in err and location(dsns[0]) in err
    assert px.execute("SELECT * FROM credit_route.partition_config").fetchone() == before


def test_migrate_again_reports_unchanged(proxy, capsys):
    assert main(["migrate", "--dsn", proxy.dsn, "--partitions", ",".join(proxy.partition_dsns())]) == 0
    out = capsys.readouterr().out
    assert f"partition 3 of {PARTITIONS}" in out and "no migration pending" in out
    assert re.search(r"proxy: routing layer for \d+ functions and \d+ views unchanged", out)


def test_what_cannot_become_a_partitioned_deployment_is_refused_before_writing(cluster, proxy_templates, proxy):
    names = fresh_databases(cluster, PARTITIONS + 1)
    fresh = [cluster.dsn(n) for n in names]
    single = cluster.create_database()  # a single server's database, with a line in it
    with psycopg.connect(cluster.dsn(single), autocommit=True) as conn:
        call(conn, "open_line", W, "r", 1)
    try:
        cases = [
            (fresh[0], fresh[1:4], "power of two"),
            (fresh[0], [fresh[0], *fresh[1:4]], "cannot also be a partition"),
            (fresh[0], [fresh[1], fresh[1], fresh[2], fresh[3]], "listed twice"),
            (fresh[0], [cluster.dsn(single), *fresh[1:4]], "already holds data"),
            (cluster.dsn(single), fresh[1:5], "single server's schema"),
            # A partition of another proxy, in another place.
            (fresh[0], [proxy.partition_dsns()[1], *fresh[1:4]], "was set up as partition 1 of 4"),
            (fresh[0], [proxy.dsn, *fresh[1:4]], "is a pgcredit proxy"),
            (cluster.dsn(names[0], user=APP_USER), fresh[1:5], "by a superuser"),
        ]
        for proxy_dsn, dsns, message in cases:
            with pytest.raises(PartitionSetupError, match=message):
                migrate_partitions(proxy_dsn, dsns)
        for n in names:  # none of it wrote anything
            with psycopg.connect(cluster.dsn(n)) as conn:
                assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'credit%'").fetchone()[0] == 0
        with pytest.raises(IsAProxy, match="is a pgcredit proxy"):
            migrate(proxy.dsn)  # the single-server migrate would replace the routing functions
    finally:
        for n in [*names, single]:
            cluster.drop_database(n)


def test_a_change_in_hashing_is_refused(proxy, px):
    """A proxy whose line hash no longer matches what placed the lines (another
    PostgreSQL major or architecture) must not route; simulated by recording
    another fingerprint and forcing a rebuild."""
    px.execute("UPDATE credit_route.partition_config SET hash_fingerprint = 'other', layer_digest = 'stale'")
    with pytest.raises(PartitionSetupError, match="hashes line keys differently from when its lines were placed"):
        migrate_partitions(proxy.dsn, proxy.partition_dsns())


# -- The API through the proxy ---------------------------------------------------------

def test_errors_are_a_single_servers(px, conn_direct):
    """SQLSTATE and message exactly as a single server reports them, for
    invalid input, a missing line in a set-returning read, and a bad page size."""
    statements = [
        "SELECT * FROM credit.reserve_credit('w', 'r', 'o', 1.005)",
        "SELECT * FROM credit.open_line('w', 'r', -1)",
        "SELECT * FROM credit.open_line('w', E'r\\t', 1)",
        "SELECT * FROM credit.open_line(NULL, 'r', 1)",
        "SELECT * FROM credit.statement('w', 'nobody', '2030-01-01', '2030-01-02')",
        "SELECT * FROM credit.list_reservations('w', 'nobody')",
        "SELECT * FROM credit.list_lines('w', NULL, 0)",
        "SELECT * FROM credit.aging('infinity')",
        "SELECT credit.expire_reservations(0)",
    ]
    for stmt in statements:
        got = []
        for c in (conn_direct, px):
            with pytest.raises(psycopg.Error) as err:
                c.execute(stmt)
            got.append((err.value.sqlstate, err.value.diag.message_primary, err.value.diag.message_detail,
                        err.value.diag.message_hint))
        assert got[1] == got[0], stmt
    assert got[0][0] == "22023"


@pytest.fixture
def conn_direct(cluster):
    name = cluster.create_database()
    with psycopg.connect(cluster.dsn(name), autocommit=True, row_factory=dict_row) as c:
        yield c
    cluster.drop_database(name)


def test_reads_on_every_partition_merge(px, parts):
    retailers = retailers_by_partition(px, per=2)
    everyone = sorted(r for rs in retailers for r in rs)
    today = px.execute("SELECT current_date AS d").fetchone()["d"]
    for i, r in enumerate(everyone):
        call(px, "open_line", W, r, 1000)
        call(px, "reserve_credit", W, r, "o", 100 + i)
        call(px, "reserve_credit", W, r, "x", 10)
        call(px, "convert_to_debit", W, r, "x", None, today - dt.timedelta(days=45))
        call(px, "reserve_credit", W, r, "big", 5000)  # insufficient_credit, logged on its partition
    call(px, "reserve_credit", W, "nobody", "o", 1)  # line_not_found
    call(px, "open_line", "other", "a", 1)

    # list_lines: pages of 3 across partitions, in retailer order, as one server gives them.
    pages, after = [], None
    while True:
        page = [r["retailer_id"] for r in px.execute("SELECT * FROM credit.list_lines(%s, %s, 3)", [W, after])]
        if not page:
            break
        assert len(page) <= 3
        pages += page
        after = page[-1]
    assert pages == everyone
    # aging: every line with something unpaid, in (wholesaler_id, retailer_id) order; one line alone.
    aged = px.execute("SELECT wholesaler_id, retailer_id, days_31_60 FROM credit.aging()").fetchall()
    assert [(a["wholesaler_id"], a["retailer_id"]) for a in aged] == [(W, r) for r in everyone]
    assert {a["days_31_60"] for a in aged} == {D(10)}
    one = px.execute("SELECT retailer_id FROM credit.aging(current_date, %s, %s)", [W, everyone[3]]).fetchall()
    assert one == [{"retailer_id": everyone[3]}]
    # The views: rows from every partition; totals summed; refusals grouped by code.
    assert len(px.execute("SELECT * FROM credit.line_summary").fetchall()) == len(everyone) + 1
    totals = px.execute("SELECT * FROM credit.monitor_totals").fetchone()
    direct = [c.execute("SELECT * FROM credit.monitor_totals").fetchone() for c in parts]
    assert totals["lines"] == len(everyone) + 1 == sum(d["lines"] for d in direct)
    assert totals["total_reserved"] == sum(100 + i for i in range(len(everyone)))
    assert totals["total_outstanding"] == 10 * len(everyone)
    assert totals["total_credit_limit"] == sum(d["total_credit_limit"] for d in direct)
    refusals = {r["code"]: r for r in px.execute("SELECT * FROM credit.monitor_refusals")}
    assert (refusals["insufficient_credit"]["refusals"], refusals["insufficient_credit"]["lines"]) == \
        (len(everyone), len(everyone))
    assert refusals["line_not_found"]["refusals"] == 1
    assert refusals["insufficient_credit"]["amount_refused"] == 5000 * len(everyone)
    assert px.execute("SELECT * FROM credit.reconcile()").fetchall() == []

    # reconcile() finds a corruption on any partition, and a line stored where the proxy does not look.
    victim = retailers[2][0]
    parts[2].execute("UPDATE credit.line SET reserved = reserved + 1 WHERE retailer_id = %s", [victim])
    call(parts[1], "open_line", W, retailers[3][0] + "-stray", 1)  # opened on partition 1 directly
    stray = retailers[3][0] + "-stray"
    findings = {(f["check_name"], f["retailer_id"]) for f in px.execute("SELECT * FROM credit.reconcile()")}
    home = partition_of(px, W, stray)
    assert ("reserved_total", victim) in findings
    assert (("line_partition", stray) in findings) == (home != 1)


def test_expire_reservations_bounds_the_whole_sweep(px):
    for retailers in retailers_by_partition(px, per=1):
        r = retailers[0]
        call(px, "open_line", W, r, 1000)
        for k in range(2):  # the second call would sweep the first hold if it had expired already
            call(px, "reserve_credit", W, r, f"e{k}", 1, dt.timedelta(milliseconds=500))
    time.sleep(0.6)
    assert px.execute("SELECT credit.expire_reservations(3) AS n").fetchone()["n"] == 3
    assert px.execute("SELECT credit.expire_reservations(1000) AS n").fetchone()["n"] == 2 * PARTITIONS - 3
    assert px.execute("SELECT credit.expire_reservations() AS n").fetchone()["n"] == 0


def test_the_lock_bound_is_the_partitions(proxy, px, parts):
    """A lock wait on a partition is bounded by that partition's
    credit.lock_timeout (a proxy session's setting does not reach it): 55P03,
    retried by the client with the same key, then CreditBusy."""
    r = retailers_by_partition(px)[1][0]
    call(px, "open_line", W, r, 100)
    parts[1].execute(f'ALTER DATABASE "{proxy.partitions[1]}" SET credit.lock_timeout = \'100ms\'')
    with psycopg.connect(proxy.partition_dsns()[1]) as holder:
        holder.execute("SELECT * FROM credit.line WHERE retailer_id = %s FOR UPDATE", [r])
        client = CreditClient(proxy.dsn, retry=FAST)
        started = time.monotonic()
        with pytest.raises(pc.CreditBusy) as err:
            client.reserve_credit(W, r, "o", 1)
        assert err.value.__cause__.sqlstate == "55P03"
        assert time.monotonic() - started < 1.5  # three waits of 100 ms, not the default 2 s each
    assert client.reserve_credit(W, r, "o", 1).replayed is False  # the lock is gone: the same key succeeds
    client.close()


# -- Least privilege on the proxy (SECURITY.md; test_security.py on a single server) --------

def _executable(conn, role: str) -> list[str]:
    return sorted({r["proname"] for r in conn.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace IN ('credit'::regnamespace, "
        "coalesce(to_regnamespace('credit_route'), 0)) AND has_function_privilege(%s, p.oid, 'EXECUTE')",
        [role])})


def test_the_proxy_carries_the_single_servers_reference(proxy, px, parts):
    """The proxy's functions, result types and views have the partitions'
    comments, so \\df+ and `pgcredit reference` on the proxy give the single
    server's reference: the same signatures, results, roles and text. The
    comments are copied on every migrate, even when the routing layer stays
    as it was (a comment can change alone)."""
    assert _reference(px) == _reference(parts[0])
    px.execute("COMMENT ON VIEW credit.monitor_book IS NULL")
    px.execute("COMMENT ON FUNCTION credit.reserve_credit(text, text, text, numeric, interval) IS 'stale'")
    assert _reference(px) != _reference(parts[0])
    assert migrate_partitions(proxy.dsn, proxy.partition_dsns()).layer_changed is False
    assert _reference(px) == _reference(parts[0])
    # What the proxy adds: the partition a per-partition feed is read from, and the list of them.
    feed = {f.name: f for f in read_catalog(px).functions}["events_after"]
    assert [a[0] for a in feed.arguments] == ["after_event_id", "max_rows", "wholesaler_id", "partition"]
    assert "  partition: the partition, 0 to N-1 (credit.partitions() lists them)" in feed.comment
    assert [r["partition"] for r in px.execute("SELECT * FROM credit.partitions()")] == list(range(PARTITIONS))


def _reference(conn) -> str:
    """The reference without what a proxy adds to a single server's API
    (events_after's partition, credit.partitions())."""
    catalog = read_catalog(conn)
    return render(dataclasses.replace(catalog, functions=tuple(
        f for f in catalog.functions if f.name not in ("events_after", "partitions"))))


def test_proxy_roles_and_grants_are_a_single_servers(cluster, proxy, px, parts):
    assert _executable(px, "credit_app") == sorted(API + ["partitions"])  # the proxy's list of feeds
    # The auditor: the API functions it may call on a partition, and the
    # functions behind the proxy's views (a view checks them against its reader).
    on_partition = [f for f in _executable(parts[0], "credit_auditor") if not f.startswith("_")]
    views = [r["relname"] for r in parts[0].execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'credit'::regnamespace AND relkind = 'v' "
        "AND has_table_privilege('credit_auditor', oid, 'SELECT')")]
    assert _executable(px, "credit_auditor") == sorted(
        on_partition + [f"_{v}_rows" for v in views] + ["_jsonb_counts_sum", "partitions"])
    px.execute("CREATE ROLE nobody_in_particular")
    try:
        assert _executable(px, "nobody_in_particular") == []
        assert px.execute("SELECT has_schema_privilege('nobody_in_particular', 'credit', 'USAGE') AS u, "
                          "has_schema_privilege('credit_app', 'credit_route', 'USAGE') AS r, "
                          "has_foreign_data_wrapper_privilege('credit_app', 'plproxy', 'USAGE') AS f, "
                          "has_server_privilege('credit_app', 'credit_partitions', 'USAGE') AS s").fetchone() == \
            {"u": False, "r": False, "f": False, "s": False}
    finally:
        px.execute("DROP ROLE nobody_in_particular")
    owners = px.execute("""
        SELECT 'function ' || p.oid::regprocedure AS obj, pg_get_userbyid(p.proowner) AS owner FROM pg_proc p
         WHERE p.pronamespace IN ('credit'::regnamespace, 'credit_route'::regnamespace)
        UNION ALL SELECT 'relation ' || c.oid::regclass, pg_get_userbyid(c.relowner) FROM pg_class c
         WHERE c.relnamespace IN ('credit'::regnamespace, 'credit_route'::regnamespace)
        UNION ALL SELECT 'type ' || t.oid::regtype, pg_get_userbyid(t.typowner) FROM pg_type t
         WHERE t.typnamespace IN ('credit'::regnamespace, 'credit_route'::regnamespace)""").fetchall()
    assert len(owners) > 60 and [o for o in owners if o["owner"] != "credit_owner"] == []
    definers = px.execute("SELECT p.oid::regprocedure::text AS fn, p.proconfig FROM pg_proc p "
                          "WHERE p.pronamespace = 'credit'::regnamespace AND p.prosecdef").fetchall()
    assert {d["fn"].split("(")[0] for d in definers} >= {f"credit.{f}" for f in API}
    assert all(d["proconfig"] == ["search_path=pg_catalog, pg_temp"] for d in definers)
    assert px.execute(r"SELECT count(*) FROM pg_proc p WHERE p.pronamespace IN ('credit'::regnamespace, "
                      r"'credit_route'::regnamespace) AND p.prosrc ~* '\mEXECUTE\M'").fetchone()["count"] == 0
    # The partitions' password: only superusers and credit_owner can read the mapping's options.
    with psycopg.connect(cluster.dsn(proxy.name, user=APP_USER), autocommit=True) as app:
        assert app.execute("SELECT umoptions FROM pg_user_mappings").fetchall() == [(None,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM credit_route.get_available('w', 'r')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM credit.line_summary")
        assert call(app, "open_line", W, "r", 100)["code"] == "ok"
        assert call(app, "reserve_credit", W, "r", "o", 10)["code"] == "ok"
    with psycopg.connect(cluster.dsn(proxy.name, user=AUDITOR_USER), autocommit=True) as aud:
        for view in ("line_summary", "monitor_totals", "monitor_refusals"):
            aud.execute(f"SELECT * FROM credit.{view}").fetchall()
        assert aud.execute("SELECT count(*) FROM credit.reconcile()").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            aud.execute("SELECT * FROM credit.reserve_credit('w', 'r', 'o', 1)")


# -- Batches: split by partition, validated whole, rows in item order ------------------------

# A stand-in with the shape SPEC gives the bulk calls (item arrays, a set of
# rows starting with item), for the routing only: the real batch functions get
# the same routing from their signature when they land.
STAND_IN_BATCH = """
SET ROLE credit_owner;
CREATE FUNCTION credit._hold_batch_check(wholesaler_ids text[], retailer_ids text[], order_refs text[],
                                         amounts numeric[], notes text[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(wholesaler_ids) IS DISTINCT FROM cardinality(amounts) THEN
        RAISE USING ERRCODE = '22023', MESSAGE = 'item arrays must have the same length';
    END IF;
    FOR i IN 1..cardinality(amounts) LOOP
        IF amounts[i] IS NULL OR amounts[i] <= 0 THEN
            RAISE USING ERRCODE = '22023', MESSAGE = format('amounts[%s] must be positive, got %s', i, amounts[i]);
        END IF;
    END LOOP;
END $$;
CREATE FUNCTION credit.hold_batch(wholesaler_ids text[], retailer_ids text[], order_refs text[],
                                  amounts numeric[], notes text[] DEFAULT NULL)
RETURNS TABLE (item integer, code text, reservation_id bigint, available numeric, note text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r credit.reserve_result;
BEGIN
    PERFORM credit._hold_batch_check(wholesaler_ids, retailer_ids, order_refs, amounts, notes);
    FOR i IN 1..cardinality(amounts) LOOP
        r := credit.reserve_credit(wholesaler_ids[i], retailer_ids[i], order_refs[i], amounts[i]);
        item := i; code := r.code; reservation_id := r.reservation_id; available := r.available; note := notes[i];
        RETURN NEXT;
    END LOOP;
END $$;
CREATE FUNCTION credit.unchecked_batch(wholesaler_ids text[], retailer_ids text[])
RETURNS TABLE (item integer) LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT 1 $$;
REVOKE ALL ON FUNCTION credit.hold_batch(text[], text[], text[], numeric[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.hold_batch(text[], text[], text[], numeric[], text[]) TO credit_app;
RESET ROLE;
"""


def test_a_batch_is_split_by_partition_validated_whole_and_returned_in_item_order(proxy, px, parts):
    for c in parts:
        c.execute(STAND_IN_BATCH)
    assert migrate_partitions(proxy.dsn, proxy.partition_dsns()).layer_changed  # the new functions are routed
    retailers = [rs[0] for rs in retailers_by_partition(px)]
    for r in retailers:
        call(px, "open_line", W, r, 100)
    # Items interleave the partitions; the same key twice on one line replays;
    # one item does not fit; one line does not exist.
    items = [(r, f"o{k}", 30) for k in range(3) for r in retailers[::-1]]
    items += [(retailers[2], "o0", 30), (retailers[1], "big", 500), ("nobody", "o", 1)]
    ws, rs, refs, amounts = [W] * len(items), [i[0] for i in items], [i[1] for i in items], [i[2] for i in items]
    notes = [f"n{k}" for k in range(1, len(items) + 1)]
    rows = px.execute("SELECT * FROM credit.hold_batch(%s, %s, %s, %s::numeric[], %s)",
                      [ws, rs, refs, amounts, notes]).fetchall()
    assert [r["item"] for r in rows] == list(range(1, len(items) + 1))
    assert [r["note"] for r in rows] == notes  # every array was split alike
    # Each item's code is the one its single call would get in array order.
    codes = collections.Counter()
    for (r, ref, amount), row in zip(items, rows):
        codes[row["code"]] += 1
        assert row["code"] != "ok" or row["reservation_id"] % PARTITIONS == (partition_of(px, W, r) + 1) % PARTITIONS
    assert codes == {"ok": 3 * PARTITIONS + 1, "insufficient_credit": 1, "line_not_found": 1}
    replay = rows[len(items) - 3]  # retailers[2]'s o0 again: item 2's hold
    assert replay["code"] == "ok" and replay["reservation_id"] == rows[1]["reservation_id"]
    for r in retailers:  # 3 holds of 30 on each line
        assert call(px, "get_available", W, r)["reserved"] == 90
    assert [r["note"] for r in px.execute("SELECT * FROM credit.hold_batch(%s, %s, %s, %s::numeric[])",
                                          [ws[:2], rs[:2], ["z1", "z2"], [1, 1]])] == [None, None]

    # A bad element anywhere refuses the whole batch, naming it, before any partition writes.
    before = [c.execute("SELECT count(*) FROM credit.reservation").fetchone()["count"] for c in parts]
    bad = [1] * 8
    bad[6] = 0
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        px.execute("SELECT * FROM credit.hold_batch(%s, %s, %s, %s::numeric[])",
                   [[W] * 8, (retailers * 2)[:8], [f"b{k}" for k in range(8)], bad])
    assert err.value.diag.message_primary == "amounts[7] must be positive, got 0"
    assert [c.execute("SELECT count(*) FROM credit.reservation").fetchone()["count"] for c in parts] == before
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="no credit._unchecked_batch_check"):
        px.execute("SELECT * FROM credit.unchecked_batch(ARRAY['w'], ARRAY['r'])")


# -- A partition that stops -----------------------------------------------------------------

def test_a_stopped_partition_fails_only_its_lines_and_everything_reconciles_after(cluster, proxy_templates):
    """Partitions 0-2 are databases of the test cluster; partition 3 is a
    cluster of its own, which the test stops and starts again."""
    names = fresh_databases(cluster, PARTITIONS)
    with private_server(cluster) as server:
        dsns = [cluster.dsn(n) for n in names[1:]] + [server.ensure_database("p3")]
        proxy_dsn = cluster.dsn(names[0])
        try:
            migrate_partitions(proxy_dsn, dsns)
            with psycopg.connect(proxy_dsn, autocommit=True, row_factory=dict_row) as px:
                retailers = retailers_by_partition(px, per=2)
                expected = {}
                for p, rs in enumerate(retailers):
                    for r in rs:
                        call(px, "open_line", W, r, 1000)
                        call(px, "reserve_credit", W, r, "before", 100)
                        expected[r] = D(100)
                client = CreditClient(proxy_dsn, retry=FAST)
                server.stop()

                down = retailers[3][0]
                with pytest.raises(psycopg.OperationalError) as err:
                    call(px, "reserve_credit", W, down, "during", 10)  # px's connection to it was open
                assert err.value.sqlstate in ("08001", "08006")
                assert f"partition 3 of {PARTITIONS}" in err.value.diag.message_primary
                with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as err:
                    call(px, "get_available", W, down)
                assert err.value.diag.message_primary.startswith(f"partition 3 of {PARTITIONS} is unreachable: ")
                assert "retry with the same idempotency key" in err.value.diag.message_hint.lower()
                with pytest.raises(pc.CreditBusy) as busy:
                    client.reserve_credit(W, down, "during", 10)
                assert busy.value.__cause__.sqlstate == "08001" and "partition 3" in str(busy.value)
                # Reads that need every partition say so too.
                for stmt in ("SELECT * FROM credit.reconcile()", "SELECT * FROM credit.line_summary",
                             "SELECT * FROM credit.list_lines('w')"):
                    with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection,
                                       match="a partition is unreachable"):
                        px.execute(stmt)
                # Every other line works, through SQL and the client.
                for p in range(3):
                    for r in retailers[p]:
                        assert call(px, "reserve_credit", W, r, "during", 10)["code"] == "ok"
                        assert client.convert_to_debit(W, r, "during").debited_amount == 10
                        assert client.get_available(W, r).reserved == expected[r]

                server.start("fsync=off")
                # The same connection reconnects; the key refused while it was down now applies once.
                assert client.reserve_credit(W, down, "during", 10).replayed is False
                expected[down] += 10
                for r in retailers[3]:
                    assert call(px, "get_available", W, r)["reserved"] == expected[r]
                assert px.execute("SELECT * FROM credit.reconcile()").fetchall() == []
                assert px.execute("SELECT lines FROM credit.monitor_totals").fetchone()["lines"] == 2 * PARTITIONS
                client.close()
        finally:
            for n in names:
                cluster.drop_database(n)


# -- T1 through the proxy ------------------------------------------------------------------

def t1_lines(px) -> tuple[str, list[str]]:
    """T1's hot line and four cold lines, placed so that every partition has some."""
    by_partition = retailers_by_partition(px, per=2, prefix="line", wholesaler="wholesaler")
    hot, cold = by_partition[0][0], [by_partition[p][0] for p in range(1, PARTITIONS)] + [by_partition[0][1]]
    return hot, cold


def test_t1_contention_through_the_proxy(cluster, proxy, px, parts, long_run):
    ops = 2000 if long_run else 150
    hot, cold = t1_lines(px)
    history = contention(proxy.dsn, workers=16, ops=ops, hot=hot, cold=cold)
    violations = history_violations(history.acks) + database_violations(px, history.acks) + history.errors
    # And behind the proxy: each partition's own reconcile, and its lines' totals against the history.
    for c in parts:
        violations += database_violations(c, history.acks)
    report(contention_report(f"T1 contention through a {PARTITIONS}-partition proxy pg{cluster.major} "
                             f"(16 x {ops})", history, violations))
    assert violations == []
    assert all(c.execute("SELECT count(*) FROM credit.line").fetchone()["count"] > 0 for c in parts)
    check_t1(history, ops)  # as the direct run: refusals, every operation, batch items booked, pairs met
    # The batch items were booked through the proxy on several partitions.
    held = collections.Counter()
    for i, c in enumerate(parts):
        held[i] = c.execute("SELECT count(*) FROM credit.reservation WHERE order_ref LIKE 'b%%'").fetchone()["count"]
    assert sum(n > 0 for n in held.values()) >= 2, held


def test_t1_through_the_proxy_catches_an_unlocked_reserve_credit(cluster, proxy, px, parts):
    for c in parts:
        unlock_reserve_credit(c)
    hot, cold = t1_lines(px)
    history = contention(proxy.dsn, workers=16, ops=60, hot=hot, cold=cold)
    violations = history_violations(history.acks) + database_violations(px, history.acks) + history.errors
    report(contention_report(f"T1 self-check through the proxy, unlocked reserve_credit, pg{cluster.major} "
                             "(16 x 60)", history, violations))
    assert history.counts["sampled_overspend"] > 0 and violations


def test_t1_orders_through_the_proxy(cluster, proxy, px, parts):
    """T1 for orders (amendments racing reservations, shipments racing
    releases) through the proxy, checked through it and behind it."""
    hot, cold = t1_lines(px)
    history = order_contention(proxy.dsn, workers=16, ops=100, hot=hot, cold=cold)
    client = CreditClient(proxy.dsn)
    violations = order_violations(px, client, history.acks) + history.errors
    client.close()
    for c in parts:
        violations += [f"partition reconcile: {r['check_name']}" for r in c.execute("SELECT * FROM credit.reconcile()")]
    report(order_contention_report(f"T1 orders through a {PARTITIONS}-partition proxy pg{cluster.major} (16 x 100)",
                                   history, violations))
    assert violations == [] and history.counts["sampled_overspend"] == 0
    codes = collections.Counter((a.op, a.result.code) for a in history.acks)
    assert codes[("amend", "ok")] > 0 and codes[("ship", "ok")] > 0


def test_the_proxys_plpgsql_passes_plpgsql_check(cluster, px):
    """The generated wrappers and the error translation, checked like the
    partitions' functions (test_static.py)."""
    if not px.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone():
        pytest.skip(f"plpgsql_check is not installed for PostgreSQL {cluster.major}: static checks skipped")
    px.execute("CREATE EXTENSION plpgsql_check")
    findings = px.execute("""
        SELECT p.oid::regprocedure::text AS fn, t.level, t.message
          FROM pg_proc p
         CROSS JOIN LATERAL plpgsql_check_function_tb(p.oid, extra_warnings => true,
                                                      performance_warnings => true, security_warnings => true) t
         WHERE p.pronamespace = 'credit'::regnamespace
           AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')""").fetchall()
    assert px.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'credit'::regnamespace").fetchone()["count"] > 20
    assert findings == []


def test_monitoring_views_add_up_every_partition(px, parts):
    retailers = retailers_by_partition(px)
    for p, rs in enumerate(retailers):
        call(px, "open_line", W, rs[0], 100 * (p + 1))
        call(px, "reserve_credit", W, rs[0], "o", 10)
        call(px, "reserve_credit", W, rs[0], "big", 10_000)  # refused
        call(px, "reserve_credit", W, rs[0], "soon", 1, dt.timedelta(milliseconds=10))
    time.sleep(0.05)
    book = px.execute("SELECT * FROM credit.monitor_book").fetchall()
    assert [(b["currency"], b["status"], b["lines"], b["credit_limit"]) for b in book] == \
        [("INR", "active", PARTITIONS, sum(100 * (p + 1) for p in range(PARTITIONS)))]
    assert book[0]["max_utilization_pct"] == max(
        c.execute("SELECT max_utilization_pct FROM credit.monitor_book").fetchone()["max_utilization_pct"] for c in parts)
    windows = {r["code"]: r for r in px.execute("SELECT * FROM credit.monitor_refusal_windows")}
    assert windows["insufficient_credit"]["last_1h"] == PARTITIONS and windows["overdue"]["last_1h"] == 0
    assert px.execute("SELECT holds_awaiting_sweep FROM credit.monitor_sweep").fetchone()["holds_awaiting_sweep"] \
        == PARTITIONS
    assert px.execute("SELECT waiters FROM credit.monitor_lock_waits").fetchone()["waiters"] == 0
    assert len(px.execute("SELECT * FROM credit.monitor_lines").fetchall()) == PARTITIONS
    # The last scheduled reconcile: no row until every partition has run.
    assert px.execute("SELECT * FROM credit.monitor_reconcile").fetchall() == []
    parts[0].execute("SELECT credit.record_reconcile()")
    assert px.execute("SELECT * FROM credit.monitor_reconcile").fetchall() == []
    parts[2].execute("UPDATE credit.line SET reserved = reserved + 1")
    assert px.execute("SELECT credit.record_reconcile() AS n").fetchone()["n"] == 1
    run = px.execute("SELECT * FROM credit.monitor_reconcile").fetchone()
    assert (run["findings"], run["findings_by_check"]) == (1, {"reserved_total": 1})


def test_status_on_a_proxy(proxy, px, capsys):
    call(px, "open_line", W, "r", 100)
    assert main(["status", "--dsn", proxy.dsn]) == 0
    out = capsys.readouterr().out
    assert f"proxy in front of {PARTITIONS} partition(s): " in out and "migrations pending" not in out
    assert "INR" in out and "not readable" not in out


def test_bench_partitions_quick_runs_and_reports(proxy_templates, tmp_path):
    """Only that it runs and reports: speed is measured by the bench, not asserted."""
    from test_cli import pgcredit

    done = pgcredit("bench", "--partitions", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "partitions.md").read_text()
    for row in ("| get_available | direct | 1 |", "| get_available | proxy4 | 1 |",
                *(f"| reserve_credit | {d} | 16 |" for d in ("direct", "proxy4"))):
        assert row in report
    assert "| the proxy hop, reserve_credit, 1 client: p50 proxy - p50 direct |" in report
