"""Migrations and function files: naming, re-runs, changed bodies, and that
every way of installing yields the same schema."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from support.db import private_server
from pgcredit.migrate import OBJECT_FOLDERS, migrate, object_files, sql_dir
from pgcredit.tools import bench

MIGRATIONS = sorted((sql_dir() / "migrations").glob("*.sql"))
REPO = Path(__file__).resolve().parents[2]


def release_objects(k: int, dest: Path) -> None:
    """Into dest: the function (and view) folders that shipped with the first k
    migrations, as they were on main just before migration k+1 reached it
    (today's for the last release). Today's files may use what a later
    migration creates (a role, a table), so they cannot stand in for an older
    release's. --first-parent: a migration made on a branch reaches main with
    the merge, whose first parent is main as it was released."""
    if k == len(MIGRATIONS):
        for folder in OBJECT_FOLDERS:
            shutil.copytree(sql_dir() / folder, dest / folder)
        return
    added = subprocess.run(["git", "-C", str(REPO), "log", "--first-parent", "--diff-filter=A", "--format=%H", "--",
                            f"sql/migrations/{MIGRATIONS[k].name}"], capture_output=True, text=True)
    if added.returncode:
        pytest.skip(f"git history of sql/migrations is unavailable ({added.stderr.strip()}): "
                    "older releases' function files cannot be rebuilt")
    commits = added.stdout.split()
    rev = f"{commits[-1]}^" if commits else "HEAD"  # not committed yet: HEAD is the release before it
    if _migrations_at(rev) != [m.name for m in MIGRATIONS[:k]]:
        # A branch whose migration was renumbered when main took its number (never
        # a migration on main): its first parents never held main's first k. The
        # newest commit that did is main's release as the branch merged it.
        rev = _newest_with([m.name for m in MIGRATIONS[:k]])
    # Views lived among the functions until they got a folder of their own.
    folders = [f"sql/{f}" for f in OBJECT_FOLDERS
               if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{rev}:sql/{f}"]).returncode == 0]
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, *folders], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(dest / ".release", **safe)
    for folder in (dest / ".release" / "sql").iterdir():
        folder.rename(dest / folder.name)


def _migrations_at(rev: str) -> list[str]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", f"{rev}:sql/migrations"],
                            capture_output=True, text=True)
    return sorted(listed.stdout.split()) if listed.returncode == 0 else []


def _newest_with(names: list[str]) -> str:
    commits = subprocess.run(["git", "-C", str(REPO), "rev-list", "--topo-order", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.split()
    found = next((c for c in commits if _migrations_at(c) == names), None)
    assert found, f"no commit of HEAD's history holds exactly the migrations {names}"
    return found


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_migration_names(path):
    assert re.fullmatch(r"\d{4}_[a-z]+(_[a-z0-9]+)+\.sql", path.name)


def test_migration_numbers_are_a_sequence():
    assert [int(p.name[:4]) for p in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_function_files_hold_one_object_named_after_the_file():
    for path in object_files(sql_dir()):
        text = path.read_text()
        created = re.findall(r"CREATE OR REPLACE (?:FUNCTION|VIEW) credit\.(\w+)", text)
        assert created == [path.stem], path.name
        assert text.startswith("SET ROLE credit_owner;"), path.name


def schema_dump(cluster, dbname: str) -> str:
    out = subprocess.run([str(cluster.bin / "pg_dump"), "--schema-only", "--schema=credit",
                          cluster.dsn(dbname)], capture_output=True, text=True, check=True).stdout
    # Comments and session settings are not schema; \restrict lines carry a random key (PG 17.6+).
    return "\n".join(line for line in out.splitlines()
                     if line and not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\")))


def test_migrate_twice_is_a_no_op(cluster, dbname):
    before = schema_dump(cluster, dbname)
    report = migrate(cluster.dsn(dbname))
    assert report.applied == [] and report.function_files == len(object_files(sql_dir()))
    assert schema_dump(cluster, dbname) == before


def test_changed_function_file_is_live_after_migrate(cluster, dbname, tmp_path):
    root = tmp_path / "sql"
    shutil.copytree(sql_dir(), root)
    f = root / "functions" / "get_available.sql"
    assert "l.status::text, l.currency" in f.read_text()
    f.write_text(f.read_text().replace("l.status::text, l.currency", "l.status::text, lower(l.currency)"))
    dsn = cluster.dsn(dbname)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT credit.open_line('w', 'r', 1)")
        assert conn.execute("SELECT currency FROM credit.get_available('w', 'r')").fetchone()[0] == "INR"
        assert migrate(dsn, root).applied == []  # nothing pending, yet the files are reloaded
        assert conn.execute("SELECT currency FROM credit.get_available('w', 'r')").fetchone()[0] == "inr"


def release(k: int, root: Path) -> Path:
    """sql/ as release k shipped it: its first k migrations and its function files."""
    (root / "migrations").mkdir(parents=True)
    for m in MIGRATIONS[:k]:
        shutil.copy(m, root / "migrations")
    release_objects(k, root)
    return root


def test_fresh_install_equals_upgrade_path(cluster, dbname, tmp_path):
    """A database that met every migration as a separate release, with the
    function files of that release reloaded after each, ends where a fresh
    install does."""
    upgraded = cluster.create_database(template=None)
    try:
        for k in range(1, len(MIGRATIONS) + 1):
            root = release(k, tmp_path / f"release{k}")
            assert migrate(cluster.dsn(upgraded), root).applied == [MIGRATIONS[k - 1].stem]
        assert schema_dump(cluster, upgraded) == schema_dump(cluster, dbname)
    finally:
        cluster.drop_database(upgraded)


def test_upgrade_keeps_the_book(cluster, tmp_path):
    """A book written under the first schema (rows as its functions left them)
    survives every later migration: totals reconcile, keys replay, work goes on."""
    db = cluster.create_database(template=None)
    try:
        migrate(cluster.dsn(db), release(1, tmp_path / "release1"))
        with psycopg.connect(cluster.dsn(db), autocommit=True) as conn:
            line = conn.execute(
                "INSERT INTO credit.line (wholesaler_id, retailer_id, credit_limit, currency, payment_terms_days,"
                " reserved, outstanding) VALUES ('w', 'r', 1000, 'INR', 30, 100, 35) RETURNING id").fetchone()[0]
            held = conn.execute("INSERT INTO credit.reservation (line_id, order_ref, amount)"
                                " VALUES (%s, 'held', 100) RETURNING id", [line]).fetchone()[0]
            done = conn.execute(
                "INSERT INTO credit.reservation (line_id, order_ref, amount, status, converted_at,"
                " converted_amount, released_amount) VALUES (%s, 'delivered', 50, 'converted', now(), 50, 0)"
                " RETURNING id", [line]).fetchone()[0]
            debit = conn.execute(
                "INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref, due_date, reservation_id)"
                " VALUES (%s, 'DEBIT', 50, 'delivered', current_date - 10, %s) RETURNING id",
                [line, done]).fetchone()[0]
            conn.execute("UPDATE credit.reservation SET debit_entry_id = %s WHERE id = %s", [debit, done])
            conn.execute("INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref)"
                         " VALUES (%s, 'CREDIT', 20, 'paid'), (%s, 'ADJUSTMENT', 5, 'fee')", [line, line])

        assert migrate(cluster.dsn(db)).applied == [m.stem for m in MIGRATIONS[1:]]
        with psycopg.connect(cluster.dsn(db), autocommit=True) as conn:
            def one(sql):
                return conn.execute(sql).fetchone()

            assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
            # The v1 ledger now has its open items: the payment settled the debit in part.
            assert one("SELECT outstanding, past_due, oldest_unpaid_due_date = current_date - 10"
                       " FROM credit.get_available('w', 'r')") == (35, 30, True)
            assert one("SELECT not_due, days_1_30, unapplied_credit, outstanding FROM credit.aging()") \
                == (5, 30, 0, 35)
            assert one("SELECT code, replayed FROM credit.record_payment('w', 'r', 'paid', 20)") == ("ok", True)
            assert one("SELECT code, reservation_id, replayed FROM credit.reserve_credit('w', 'r', 'held', 100)") \
                == ("ok", held, True)
            assert one("SELECT code, ledger_entry_id, replayed FROM credit.convert_to_debit('w', 'r', 'delivered')") \
                == ("ok", debit, True)
            assert one("SELECT code FROM credit.release_reservation('w', 'r', 'held')") == ("ok",)
            assert one("SELECT code FROM credit.reserve_credit('w', 'r', 'new', 1000)") == ("insufficient_credit",)
            assert one("SELECT code FROM credit.reserve_credit('w', 'r', 'new', 900)") == ("ok",)
            assert one("SELECT code FROM credit.convert_to_debit('w', 'r', 'new')") == ("ok",)
            assert one("SELECT reserved, outstanding FROM credit.get_available('w', 'r')") == (0, 935)
            assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
    finally:
        cluster.drop_database(db)


def test_dba_install_with_psql_alone_equals_migrate(cluster, dbname):
    """The README's command for installing without Python."""
    plain = cluster.create_database(template=None)
    try:
        files = sorted((sql_dir() / "migrations").glob("*.sql")) + object_files(sql_dir())
        sql = "".join(f.read_text() + "\n" for f in files)
        done = subprocess.run([str(cluster.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1",
                               "-d", cluster.dsn(plain)], input=sql, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert schema_dump(cluster, plain) == schema_dump(cluster, dbname)
    finally:
        cluster.drop_database(plain)


def test_wheel_ships_the_sql(tmp_path):
    """pip install alone must be able to migrate: sql/ is inside the wheel."""
    repo = REPO
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(repo)], capture_output=True, text=True)
    if done.returncode:  # hatchling may be missing from the venv: build in isolation then
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                               str(repo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import zipfile
    (wheel,) = tmp_path.glob("pgcredit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in MIGRATIONS + object_files(sql_dir()) + sorted((sql_dir() / "proxy").rglob("*.sql")):
        assert f"pgcredit/sql/{f.relative_to(sql_dir()).as_posix()}" in names
    # The bench's schema and pgbench scripts are package data.
    bench_sql = Path(bench.__file__).resolve().parent / "bench_sql"
    assert len(list(bench_sql.rglob("*.sql"))) > 10
    for f in bench_sql.rglob("*.sql"):
        assert f"pgcredit/tools/bench_sql/{f.relative_to(bench_sql).as_posix()}" in names


def _owned_database(cluster, owner: str, *role_options: str, grant_owner: bool = False) -> str:
    with cluster.admin() as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN {' '.join(role_options)}")
        if grant_owner:
            conn.execute(f"GRANT credit_owner TO {owner}")
    name = cluster.create_database(template=None)
    with cluster.admin() as conn:
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO {owner}')
    return name


def _drop(cluster, name: str, owner: str) -> None:
    cluster.drop_database(name)
    with cluster.admin() as conn:
        conn.execute(f"DROP ROLE {owner}")


def test_non_superuser_owner_that_a_dba_made_a_credit_owner(cluster):
    name = _owned_database(cluster, "owner_granted", grant_owner=True)
    try:
        dsn = cluster.dsn(name, user="owner_granted")
        assert migrate(dsn).applied == [m.stem for m in MIGRATIONS]
        assert migrate(dsn).applied == []
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT code FROM credit.open_line('w', 'r', 5)").fetchone() == ("ok",)
            assert conn.execute("SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc "
                                "WHERE pronamespace = 'credit'::regnamespace").fetchall() == [("credit_owner",)]
    finally:
        _drop(cluster, name, "owner_granted")


def test_non_superuser_owner_without_the_role_gets_a_clear_error(cluster):
    name = _owned_database(cluster, "owner_alone")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            migrate(cluster.dsn(name, user="owner_alone"))
        assert "GRANT credit_owner TO owner_alone" in err.value.diag.message_hint
        with psycopg.connect(cluster.dsn(name)) as conn:
            assert conn.execute("SELECT to_regnamespace('credit')").fetchone() == (None,)
    finally:
        _drop(cluster, name, "owner_alone")


def test_non_superuser_owner_with_createrole_on_a_new_cluster(cluster):
    """Where the credit roles do not exist yet, the owner's migration creates them."""
    with private_server(cluster) as server:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE ROLE dbowner LOGIN CREATEROLE")
            conn.execute("CREATE DATABASE shop OWNER dbowner")
        dsn = psycopg.conninfo.make_conninfo(server.conninfo("shop"), user="dbowner")
        assert migrate(dsn).applied == [m.stem for m in MIGRATIONS]
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            assert conn.execute("SELECT code FROM credit.open_line('w', 'r', 5)").fetchone() == ("ok",)


def _v11_reads(conn) -> dict:
    """Everything a v1.1 caller reads of the book written by _v11_book."""
    def rows(sql, *args):
        return [dict(r) for r in conn.execute(sql, args)]

    out = {"reconcile": rows("SELECT * FROM credit.reconcile()"),
           "lines": rows("SELECT * FROM credit.list_lines('w')"),
           # oldest_active_hold_age grows while the test runs
           "summary": rows("SELECT line_id, reserved, outstanding, available, active_holds, overdue_amount "
                           "FROM credit.line_summary ORDER BY line_id"),
           "aging": rows("SELECT * FROM credit.aging(current_date + 45)")}
    for r in ("r1", "r2"):
        out[f"available {r}"] = rows("SELECT * FROM credit.get_available('w', %s)", r)
        out[f"statement {r}"] = rows("SELECT * FROM credit.statement('w', %s, current_date - 1, current_date)", r)
        for status in ("active", "released", "converted", "expired", None):
            out[f"list {r} {status}"] = rows("SELECT * FROM credit.list_reservations('w', %s, %s)", r, status)
        for ref in ("held", "soon", "whole", "part", "cancelled", "swept", "batch1", "batch2"):
            out[f"hold {r} {ref}"] = rows("SELECT * FROM credit.get_reservation('w', %s, %s)", r, ref)
    return out


def _v11_book(conn) -> None:
    """A book written through the v1.1 API: every kind of hold and entry."""
    for r in ("r1", "r2"):
        conn.execute("SELECT credit.open_line('w', %s, 10000)", [r])
        for ref, amount in (("held", 100), ("whole", 300), ("part", 400), ("cancelled", 50)):
            conn.execute("SELECT credit.reserve_credit('w', %s, %s, %s)", [r, ref, amount])
        conn.execute("SELECT credit.reserve_credit('w', %s, 'soon', 70, interval '1 hour')", [r])
        conn.execute("SELECT credit.reserve_credit('w', %s, 'swept', 60, interval '1 millisecond')", [r])
        conn.execute("SELECT credit.convert_to_debit('w', %s, 'whole', NULL, current_date - 40)", [r])
        conn.execute("SELECT credit.convert_to_debit('w', %s, 'part', 250)", [r])  # v1 partial: 150 released
        conn.execute("SELECT credit.release_reservation('w', %s, 'cancelled', 'out of stock')", [r])
        conn.execute("SELECT credit.record_payment('w', %s, 'pay', 120)", [r])
        conn.execute("SELECT credit.reverse_debit('w', %s, 'part', 'ret', 50, 'damaged')", [r])
        conn.execute("SELECT credit.adjust_balance('w', %s, 'fee', 5, 'late fee')", [r])
    conn.execute("SELECT * FROM credit.reserve_credit_batch('{w,w}', '{r1,r1}', '{batch1,batch2}', '{10,20}')")
    conn.execute("SELECT * FROM credit.convert_to_debit_batch('{w}', '{r1}', '{batch1}')")
    conn.execute("SELECT * FROM credit.record_payment_batch('{w}', '{r2}', '{pay2}', '{7}')")
    conn.execute("SELECT credit.set_overdue_policy('w', 'r2', 30, 0, 'terms')")
    time.sleep(0.01)
    conn.execute("SELECT credit.expire_reservations()")  # 'swept' is expired as v1.1 marked it


def test_a_v11_book_upgraded_to_orders_reads_the_same_and_goes_on(cluster, tmp_path):
    """A book written by the release before migration 0007 (its migrations and
    function files, from git), upgraded: every v1.1 read gives what it gave,
    with two differences SPEC v1.2 brings (remaining_amount, a trailing column;
    an expired hold's released_amount, which v1.1 left NULL, is what its
    expiry released); reconcile is clean; the old keys replay and the new
    calls work on the old holds and debits."""
    k = next(i for i, m in enumerate(MIGRATIONS) if m.name == "0007_add_order_changes.sql")
    db = cluster.create_database(template=None)
    try:
        dsn = cluster.dsn(db)
        migrate(dsn, release(k, tmp_path / "before"))
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            _v11_book(conn)
            before = _v11_reads(conn)
        assert before["reconcile"] == [] and before["hold r1 swept"][0]["status"] == "expired"
        assert migrate(dsn).applied == [m.stem for m in MIGRATIONS[k:]]
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            after = _v11_reads(conn)
            assert after.keys() == before.keys()
            for key, rows in after.items():
                assert len(rows) == len(before[key]), key
                for old, new in zip(before[key], rows):
                    if "remaining_amount" in new:
                        assert list(new)[-1] == "remaining_amount" and key.startswith(("hold", "list"))
                        new = {c: v for c, v in new.items() if c != "remaining_amount"}
                    if key.endswith(" swept") and key.startswith("hold"):
                        assert (old["released_amount"], new["released_amount"]) == (None, Decimal(60))
                        new = {**new, "released_amount": None}
                    assert new == old, key
            assert after["hold r1 held"][0]["remaining_amount"] == Decimal(100)
            assert after["hold r1 part"][0]["remaining_amount"] == Decimal(0)

            def one(sql, *args):
                return conn.execute(sql, args).fetchone()

            # Old keys replay exactly as they did (a v1 partial conversion: NULL meant the whole hold).
            assert one("SELECT code, replayed FROM credit.reserve_credit('w', 'r1', 'held', 100)") == \
                {"code": "ok", "replayed": True}
            assert one("SELECT code FROM credit.convert_to_debit('w', 'r1', 'part', 250)")["code"] == "ok"
            assert one("SELECT code FROM credit.convert_to_debit('w', 'r1', 'part')")["code"] == \
                "exists_with_different_amount"
            assert one("SELECT replayed FROM credit.record_payment('w', 'r1', 'pay', 120)")["replayed"] is True
            assert one("SELECT code FROM credit.record_payment('w', 'r1', 'pay', 120, '{whole}')")["code"] == \
                "exists_with_different_terms"
            # The new calls on old holds and debits.
            assert one("SELECT code, remaining_amount FROM credit.amend_reservation('w', 'r1', 'held', 150, 'a1')") \
                == {"code": "ok", "remaining_amount": Decimal(150)}
            shipped = one("SELECT code, status, remaining_amount FROM credit.convert_to_debit('w', 'r1', 'held', 40,"
                          " NULL, 'held/1')")
            assert shipped == {"code": "ok", "status": "active", "remaining_amount": Decimal(110)}
            assert one("SELECT code FROM credit.record_payment('w', 'r1', 'remit', 100, '{part,held/1}')")["code"] \
                == "ok"
            assert one("SELECT code FROM credit.release_reservation('w', 'r1', 'soon')")["code"] == "ok"
            assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
    finally:
        cluster.drop_database(db)
