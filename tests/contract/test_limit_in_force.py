"""Every read and result that shows a limit or an `available` uses the limit in
force: a temporary limit until its valid_until, the permanent one from then on.

The catalog decides what "every" is: a public function or view with a column
named like a limit, `available` or a utilization is one this test must check
(test_every_limit_column_is_checked), so a new one cannot be left out."""

from __future__ import annotations

from decimal import Decimal as D

from support.db import call

W, R = "w", "r"
PERMANENT, TEMPORARY = D(1000), D(3000)

# The functions and views below, each checked in both phases.
CHECKED = {
    "functions": {"open_line", "set_credit_limit", "get_available", "can_reserve", "list_lines",
                  "reserve_credit", "release_reservation", "convert_to_debit", "record_payment",
                  "reverse_debit", "adjust_balance", "reserve_credit_batch", "convert_to_debit_batch",
                  "record_payment_batch", "amend_reservation"},
    "views": {"line_summary", "monitor_lines", "monitor_book", "monitor_totals"},
}
# A column that shows a limit, or a figure computed from one.
LIMIT_COLUMN = r"(^|_)(credit_limit|available|utilization(_pct)?|over_90pct)$"


def test_every_limit_column_is_checked(conn):
    rows = conn.execute("""
        SELECT 'functions' AS kind, p.proname AS name
          FROM pg_proc p
          LEFT JOIN pg_type t ON t.oid = p.prorettype AND t.typtype = 'c'
         WHERE p.pronamespace = 'credit'::regnamespace AND p.proname !~ '^_'
           AND (EXISTS (SELECT FROM unnest(p.proargnames, p.proargmodes) AS a(n, m)
                         WHERE a.m IN ('o', 't', 'b') AND a.n ~ %(pattern)s)
                OR EXISTS (SELECT FROM pg_attribute x
                            WHERE x.attrelid = t.typrelid AND x.attnum > 0 AND x.attname ~ %(pattern)s))
        UNION
        SELECT 'views', c.relname
          FROM pg_class c
         WHERE c.relnamespace = 'credit'::regnamespace AND c.relkind = 'v'
           AND EXISTS (SELECT FROM pg_attribute x
                        WHERE x.attrelid = c.oid AND x.attnum > 0 AND x.attname ~ %(pattern)s)""",
                        {"pattern": LIMIT_COLUMN}).fetchall()
    shown = {"functions": set(), "views": set()}
    for r in rows:
        shown[r["kind"]].add(r["name"])
    assert shown == CHECKED, (
        "these show a limit or an available: check them in tests/contract/test_limit_in_force.py "
        f"on a line with a temporary limit: {shown['functions'] ^ CHECKED['functions']} "
        f"{shown['views'] ^ CHECKED['views']}")


class Line:
    """The test's line and what it should show: exposure is reserved + outstanding."""

    def __init__(self, conn):
        self.conn = conn
        self.exposure = D(0)
        self.limit = PERMANENT

    @property
    def available(self) -> D:
        return self.limit - self.exposure

    def moves(self, fn: str, *args, by: D = D(0), row: int = 0) -> dict:
        """Calls fn, which moves the exposure by `by`, and checks the available it reports."""
        rows = self.conn.execute(f"SELECT * FROM credit.{fn}({', '.join(['%s'] * len(args))})", args).fetchall()
        result = rows[row]
        assert result["code"] == "ok", (fn, result)
        self.exposure += by
        assert result["available"] == self.available, (fn, self.limit, result)
        return result

    def reads(self) -> None:
        """Every read that shows the limit or available, without writing."""
        conn, limit, available = self.conn, self.limit, self.available
        utilization = round(100 * self.exposure / limit, 2)
        a = call(conn, "get_available", W, R)
        assert (a["credit_limit"], a["available"]) == (limit, available), a
        assert (a["limit_valid_until"] is None) == (limit == PERMANENT), a
        yes = call(conn, "can_reserve", W, R, available)
        no = call(conn, "can_reserve", W, R, available + 1)
        assert (yes["code"], yes["available"]) == ("ok", available), yes
        assert (no["code"], no["available"], no["shortfall"]) == ("insufficient_credit", available, 1), no
        lines = conn.execute("SELECT * FROM credit.list_lines(%s)", [W]).fetchall()
        assert [(r["credit_limit"], r["available"]) for r in lines] == [(limit, available)]
        for view in ("line_summary", "monitor_lines"):
            v = conn.execute(f"SELECT * FROM credit.{view}").fetchone()
            assert (v["credit_limit"], v["available"], v["utilization_pct"]) == (limit, available, utilization), \
                (view, v)
        book = conn.execute("SELECT * FROM credit.monitor_book").fetchone()
        assert (book["credit_limit"], book["max_utilization_pct"], book["lines_over_90pct"]) == \
            (limit, utilization, int(utilization >= 90)), book
        totals = conn.execute("SELECT total_credit_limit FROM credit.monitor_totals").fetchone()
        assert totals["total_credit_limit"] == limit
        replay = call(conn, "open_line", W, R, PERMANENT)  # terms compare with the permanent limit
        assert (replay["code"], replay["credit_limit"], replay["available"]) == ("ok", limit, available), replay

    def writes(self, phase: str) -> None:
        """Every call that reports an available after it, each moving the exposure."""
        self.moves("reserve_credit", W, R, f"{phase}-1", 50, by=D(50))
        refused = self.conn.execute("SELECT * FROM credit.reserve_credit(%s, %s, %s, %s)",
                                    [W, R, f"{phase}-big", self.available + 1]).fetchone()
        assert (refused["code"], refused["available"], refused["shortfall"]) == \
            ("insufficient_credit", self.available, 1), refused
        self.moves("release_reservation", W, R, f"{phase}-1", by=D(-50))
        self.moves("reserve_credit", W, R, f"{phase}-2", 60, by=D(60))
        self.moves("convert_to_debit", W, R, f"{phase}-2")  # reserved becomes outstanding
        self.moves("record_payment", W, R, f"{phase}-pay", 10, by=D(-10))
        self.moves("reverse_debit", W, R, f"{phase}-2", f"{phase}-rev", 5, "returned", by=D(-5))
        self.moves("adjust_balance", W, R, f"{phase}-fee", 7, "late fee", by=D(7))
        self.moves("reserve_credit_batch", [W], [R], [f"{phase}-b"], [20], by=D(20))
        self.moves("convert_to_debit_batch", [W], [R], [f"{phase}-b"])
        self.moves("record_payment_batch", [W], [R], [f"{phase}-bpay"], [3], by=D(-3))
        self.moves("reserve_credit", W, R, f"{phase}-3", 40, by=D(40))
        self.moves("amend_reservation", W, R, f"{phase}-3", 65, f"{phase}-up", by=D(25))
        refused = self.conn.execute("SELECT * FROM credit.amend_reservation(%s, %s, %s, %s, %s)",
                                    [W, R, f"{phase}-3", 65 + self.available + 1, f"{phase}-big"]).fetchone()
        assert (refused["code"], refused["available"], refused["shortfall"]) == \
            ("insufficient_credit", self.available, 1), refused
        self.moves("amend_reservation", W, R, f"{phase}-3", 30, f"{phase}-down", by=D(-35))
        self.moves("convert_to_debit", W, R, f"{phase}-3", 10, None, f"{phase}-3/1")  # reserved becomes outstanding
        self.moves("record_payment", W, R, f"{phase}-remit", 4, [f"{phase}-3/1"], by=D(-4))


def test_reads_and_results_use_the_limit_in_force(conn):
    line = Line(conn)
    call(conn, "open_line", W, R, PERMANENT)
    line.moves("reserve_credit", W, R, "held", 100, by=D(100))
    line.moves("reserve_credit", W, R, "owed", 200, by=D(200))
    line.moves("convert_to_debit", W, R, "owed")

    until = conn.execute("SELECT now() + interval '1 hour' AS t").fetchone()["t"]
    line.limit = TEMPORARY
    set_ = call(conn, "set_credit_limit", W, R, TEMPORARY, "season", until)
    assert (set_["credit_limit"], set_["available"]) == (TEMPORARY, line.available), set_
    line.reads()
    line.writes("during")
    line.reads()

    # The temporary limit's end, as the passing of time brings it: its moment,
    # and the line's next_expiry (a lower bound on it), now in the past. No
    # sweep has run; the reads must not wait for one, the writes run it.
    conn.execute("UPDATE credit.line SET limit_valid_until = now() - interval '1 second', "
                 "next_expiry = now() - interval '1 second'")
    line.limit = PERMANENT
    line.reads()
    line.writes("after")
    line.reads()
    assert conn.execute("SELECT temp_limit, limit_valid_until FROM credit.line").fetchone() == \
        {"temp_limit": None, "limit_valid_until": None}  # a write swept it

    set_ = call(conn, "set_credit_limit", W, R, PERMANENT + 1, "review")
    assert (set_["credit_limit"], set_["available"]) == (PERMANENT + 1, line.available + 1), set_
    assert conn.execute("SELECT * FROM credit.reconcile()").fetchall() == []
