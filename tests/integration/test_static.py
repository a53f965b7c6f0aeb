"""Static checks of every PL/pgSQL function with plpgsql_check, where installed
(./dev test installs the Debian package postgresql-15-plpgsql-check as root with apt-get)."""

from __future__ import annotations

import pytest

# Every level plpgsql_check reports matters here: errors, warnings (unused or
# shadowed variables), extra warnings, performance and security warnings.
FINDINGS = """
SELECT p.oid::regprocedure::text AS fn, t.level, t.message, t.lineno
  FROM pg_proc p
 CROSS JOIN LATERAL plpgsql_check_function_tb(
        p.oid,
        relid => CASE WHEN p.prorettype = 'trigger'::regtype THEN 'credit.ledger_entry'::regclass ELSE 0 END,
        extra_warnings => true, performance_warnings => true, security_warnings => true) t
 WHERE p.pronamespace = 'credit'::regnamespace
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
"""


@pytest.fixture
def checked(cluster, conn):
    if not conn.execute("SELECT FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchall():
        pytest.skip(f"plpgsql_check is not installed for PostgreSQL {cluster.major}: static checks skipped")
    conn.execute("CREATE EXTENSION plpgsql_check")
    return conn


def test_every_plpgsql_function_passes_plpgsql_check(checked):
    assert checked.execute(FINDINGS).fetchall() == []


def test_plpgsql_check_catches_a_broken_function(checked):
    checked.execute("""
        CREATE FUNCTION credit._broken() RETURNS numeric LANGUAGE plpgsql AS $$
        DECLARE unused integer;
        BEGIN RETURN (SELECT l.no_such_column FROM credit.line l LIMIT 1); END $$""")
    found = {(r["fn"], r["level"]) for r in checked.execute(FINDINGS)}
    assert ("credit._broken()", "error") in found
