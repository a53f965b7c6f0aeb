"""The README's examples run as written (only the DSN is swapped)."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def block(lang: str, heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_python_example(dsn, capsys):
    code = block("python", "## From Python").replace('"postgresql://app@db/shop"', repr(dsn))
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "short by 1500.00"


def test_sql_example(conn):
    statements = [s.strip() for s in re.sub(r"--.*", "", block("sql", "## From SQL")).split(";") if s.strip()]
    results = [conn.execute(s).fetchall() for s in statements]
    refused = results[2][0]
    assert (refused["code"], refused["available"], refused["shortfall"]) == \
        ("insufficient_credit", Decimal("97500.00"), Decimal("1500.00"))
    assert all(r[0]["code"] == "ok" for r in results[:2] + results[3:6])
    assert results[-1] == []  # reconcile(): healthy


def test_order_and_receivables_screen_examples(dsn, conn, capsys):
    section = "## An order screen and a receivables screen"
    code = block("python", section).replace('"postgresql://app@db/shop"', repr(dsn))
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "order-2 800.00 active"
    assert out[2].startswith("1200.00 1200.00 ")
    assert out[3:] == ["kiosk 0.00 1200.00 1200.00", "refused: unpaid invoices are past due", "ok",
                       "converted 500.00 0.00", "1100.00 1100.00 600.00"]  # amended, shipped in two, remitted
    statements = [s.strip() for s in re.sub(r"--.*", "", block("sql", section)).split(";") if s.strip()]
    results = [conn.execute(s).fetchall() for s in statements]
    assert [r["order_ref"] for r in results[0]] == ["order-2", "order-3"]
    assert results[2][0]["code"] == "ok" and results[3][0]["retailer_id"] == "kiosk"
    assert results[4][0]["past_due"] == 0
    assert results[6][0]["code"] == results[7][0]["code"] == "ok"
    assert [r[0]["code"] for r in results[8:]] == ["ok"] * 6
    assert (results[9][0]["amount"], results[9][0]["previous_amount"]) == (Decimal("450.00"), Decimal("400.00"))
    assert (results[10][0]["status"], results[10][0]["remaining_amount"]) == ("active", Decimal("150.00"))
    assert (results[11][0]["status"], results[11][0]["debited_amount"]) == ("converted", Decimal("150.00"))
    owed = conn.execute("SELECT e.ref, o.unpaid FROM credit.open_item o JOIN credit.ledger_entry e ON e.id = o.entry_id"
                        " WHERE e.ref LIKE 'order-5/%'").fetchall()
    assert [(r["ref"], r["unpaid"]) for r in owed] == [("order-5/1", Decimal("280.00"))]  # the remittance paid /2

def test_bulk_call_examples(dsn, conn, capsys):
    conn.execute("SELECT credit.open_line('acme', 'corner-store', 100000)")
    from pgcredit import CreditClient

    credit = CreditClient(dsn)
    exec(compile(block("python", "## Bulk calls"), "README.md", "exec"), {"credit": credit, "Decimal": Decimal})
    credit.close()
    assert capsys.readouterr().out.strip() == "[(1, 'ok'), (2, 'insufficient_credit')]"
    rows = conn.execute(re.sub(r"--.*", "", block("sql", "## Bulk calls"))).fetchall()
    assert [(r["item"], r["code"], r["outstanding"]) for r in rows] == \
        [(1, "ok", Decimal("-500.00")), (2, "ok", Decimal("-900.00"))]


def test_readme_links_the_projects_own_reference():
    """The reference a reader needs is in the repository and the wheel's
    catalog; nothing a user reads points outside the project for it."""
    repo = Path(__file__).resolve().parents[2]
    assert "[docs/SQL-REFERENCE.md](docs/SQL-REFERENCE.md)" in README
    assert (repo / "docs" / "SQL-REFERENCE.md").is_file()
    outside = ("../" + "shared", "SPEC" + ".md")  # spelled apart so that this file does not match itself
    skip = {".git", ".venv", "node_modules", "__pycache__", ".pytest_cache"}
    found = []
    for folder, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(f for f in files if not f.endswith((".png", ".pyc"))):
            path = Path(folder, name)
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(repo)}: {word}" for word in outside if word in text]
    assert found == []


@pytest.mark.direct_only("through the proxy each partition has its own feed: events_after takes a partition")
def test_event_examples(dsn, conn, capsys):
    from pgcredit import CreditClient

    credit = CreditClient(dsn)
    credit.open_line("acme", "corner-store", Decimal("100000"))
    credit.reserve_credit("acme", "corner-store", "order-17", Decimal("2500.00"))
    code = block("python", "## Events: what the database decided")
    exec(compile(code, "README.md", "exec"), {"credit": credit})
    credit.close()
    printed = capsys.readouterr().out.splitlines()
    shown = [line.removeprefix("# ") for line in code.splitlines() if re.match(r"# \d", line)]
    assert printed == shown
    rows = conn.execute(re.sub(r"--.*", "", block("sql", "## Events: what the database decided"))).fetchall()
    assert [(r["kind"], r["available"]) for r in rows] == [("line_opened", "100000.00"), ("hold_reserved", "97500.00")]

