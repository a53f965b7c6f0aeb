"""Migrations and function files: naming, re-runs, changed bodies, and that
every way of installing yields the same schema."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgcredit.migrate import migrate, sql_dir

MIGRATIONS = sorted((sql_dir() / "migrations").glob("*.sql"))


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_migration_names(path):
    assert re.fullmatch(r"\d{4}_[a-z]+(_[a-z0-9]+)+\.sql", path.name)


def test_migration_numbers_are_a_sequence():
    assert [int(p.name[:4]) for p in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_function_files_hold_one_object_named_after_the_file():
    for path in (sql_dir() / "functions").glob("*.sql"):
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
    assert report.applied == [] and report.function_files == len(list((sql_dir() / "functions").glob("*.sql")))
    assert schema_dump(cluster, dbname) == before


def test_changed_function_file_is_live_after_migrate(cluster, dbname, tmp_path):
    root = tmp_path / "sql"
    shutil.copytree(sql_dir(), root)
    f = root / "functions" / "get_available.sql"
    f.write_text(f.read_text().replace("l.status, l.currency", "l.status, lower(l.currency)"))
    dsn = cluster.dsn(dbname)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT credit.open_line('w', 'r', 1)")
        assert conn.execute("SELECT currency FROM credit.get_available('w', 'r')").fetchone()[0] == "INR"
        assert migrate(dsn, root).applied == []  # nothing pending, yet the files are reloaded
        assert conn.execute("SELECT currency FROM credit.get_available('w', 'r')").fetchone()[0] == "inr"


def test_fresh_install_equals_upgrade_path(cluster, dbname, tmp_path):
    """A database that met every migration as a separate release, with the
    function files of that time reloaded after each, ends where a fresh install
    does. (With one migration the path is short; it grows with each one.)"""
    upgraded = cluster.create_database(template=None)
    try:
        for k in range(1, len(MIGRATIONS) + 1):
            root = tmp_path / f"release{k}"
            (root / "migrations").mkdir(parents=True)
            for m in MIGRATIONS[:k]:
                shutil.copy(m, root / "migrations")
            shutil.copytree(sql_dir() / "functions", root / "functions")
            assert migrate(cluster.dsn(upgraded), root).applied == [MIGRATIONS[k - 1].stem]
        assert schema_dump(cluster, upgraded) == schema_dump(cluster, dbname)
    finally:
        cluster.drop_database(upgraded)


def test_dba_install_with_psql_alone_equals_migrate(cluster, dbname):
    """The README's command for installing without Python."""
    plain = cluster.create_database(template=None)
    try:
        files = sorted((sql_dir() / "migrations").glob("*.sql")) + sorted((sql_dir() / "functions").glob("*.sql"))
        sql = "".join(f.read_text() + "\n" for f in files)
        done = subprocess.run([str(cluster.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1",
                               "-d", cluster.dsn(plain)], input=sql, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert schema_dump(cluster, plain) == schema_dump(cluster, dbname)
    finally:
        cluster.drop_database(plain)


def test_wheel_ships_the_sql(tmp_path):
    """pip install alone must be able to migrate: sql/ is inside the wheel."""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(repo)], capture_output=True, text=True)
    if done.returncode:  # hatchling may be missing from the venv: build in isolation then
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                               str(repo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import zipfile
    (wheel,) = tmp_path.glob("pgcredit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in MIGRATIONS + sorted((sql_dir() / "functions").glob("*.sql")):
        assert f"pgcredit/sql/{f.parent.name}/{f.name}" in names
