"""A recorded book, for the tests of what a DBA does to a database (tests/ops:
point-in-time recovery, dump and restore, upgrade under traffic).

Every call is kept with its arguments (so its idempotency key), its answer, and
when it was sent and answered (time.time(): the server's clock on this
machine). From the answers alone `model` derives each line's reserved and
outstanding; `resend` sends the keyed calls again, as an application does
after a restore. `varied_book` writes every kind of entry and hold state;
`reads` is every read of a book, to compare two copies of it. `Traffic` is
concurrent callers whose lines never refuse, so that the model is exact in
any interleaving.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import psycopg

# Calls that carry an idempotency key: (what they do to a line, the key's argument).
KEYED = {
    "reserve_credit": ("reserve", "order_ref"),
    "release_reservation": ("release", "order_ref"),
    "convert_to_debit": ("convert", "order_ref"),
    "record_payment": ("payment", "payment_ref"),
    "reverse_debit": ("reversal", "reversal_ref"),
    "adjust_balance": ("adjustment", "adjustment_ref"),
    "reserve_credit_batch": ("reserve", "order_ref"),
    "convert_to_debit_batch": ("convert", "order_ref"),
    "record_payment_batch": ("payment", "payment_ref"),
}
BATCH = {"reserve_credit_batch", "convert_to_debit_batch", "record_payment_batch"}


@dataclass(frozen=True)
class Call:
    fn: str
    args: dict
    result: Any
    sent: float
    acked: float
    worker: int = 0


@dataclass(frozen=True)
class Item:
    """One keyed effect: a single call, or one item of a bulk call."""

    op: str
    line: tuple[str, str]
    key: str
    amount: D | None  # what was asked (convert: None is the whole hold)
    result: Any


def items(call: Call) -> list[Item]:
    op, key = KEYED[call.fn]
    if call.fn in BATCH:
        return [Item(op, (w, r), ref, amount, res)
                for (w, r, ref, amount), res in zip(call.args["items"], call.result)]
    a = call.args
    return [Item(op, (a["wholesaler_id"], a["retailer_id"]), a[key], a.get("amount"), call.result)]


class Recorder:
    """Calls an API object (a CreditClient, or an older release's) and keeps every call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def call(self, api, fn: str, worker: int = 0, **args) -> Any:
        sent = time.time()
        result = getattr(api, fn)(**args)
        acked = time.time()
        args.pop("check", None)
        with self._lock:
            self.calls.append(Call(fn, args, result, sent, acked, worker))
        return result

    def keyed(self) -> list[Call]:
        return [c for c in self.calls if c.fn in KEYED]


def model(calls: list[Call]) -> dict[tuple[str, str], tuple[D, D]]:
    """Each line's (reserved, outstanding) as the answers imply, each keyed
    effect counted once however often it was answered. Holds are taken to be
    alive until released or converted: the books it is used on let none expire."""
    holds: dict[tuple, D] = {}
    ended: set[tuple] = set()
    outstanding: dict[tuple, D] = collections.defaultdict(D)
    seen: set[tuple] = set()
    lines: set[tuple] = set()
    for call in calls:
        if call.fn not in KEYED:
            continue
        for it in items(call):
            lines.add(it.line)
            if it.result.code != "ok" or (it.op, it.line, it.key) in seen:
                continue
            seen.add((it.op, it.line, it.key))
            if it.op == "reserve":
                holds[(it.line, it.key)] = it.result.amount
            elif it.op in ("release", "convert"):
                ended.add((it.line, it.key))
                if it.op == "convert":
                    outstanding[it.line] += it.result.debited_amount
            elif it.op in ("payment", "reversal"):
                outstanding[it.line] -= it.amount
            else:
                outstanding[it.line] += it.amount
    reserved: dict[tuple, D] = collections.defaultdict(D)
    for (line, key), amount in holds.items():
        if (line, key) not in ended:
            reserved[line] += amount
    return {line: (reserved[line], outstanding[line]) for line in lines}


def figures(conn: psycopg.Connection, lines) -> dict[tuple[str, str], tuple[D, D]]:
    return {(w, r): tuple(conn.execute("SELECT reserved, outstanding FROM credit.get_available(%s, %s)",
                                       [w, r]).fetchone()) for w, r in lines}


def renamed(call: Call, suffix: str) -> dict:
    """The call's arguments with its keys changed: what a retry without the key sends."""
    key = KEYED[call.fn][1]
    if call.fn in BATCH:
        return {**call.args, "items": [(w, r, f"{ref}{suffix}", amount) for w, r, ref, amount in call.args["items"]]}
    if call.fn == "reverse_debit":  # the debit is found by its order, itself sent again under a new key
        return {**call.args, "order_ref": call.args["order_ref"] + suffix, key: call.args[key] + suffix}
    return {**call.args, key: call.args[key] + suffix}


def resend(api, calls: list[Call], suffix: str = "") -> list[tuple[Call, Any]]:
    """Sends every keyed call again, in the order they were first sent, with the
    same arguments (with `suffix`, under new keys). Returns (call, new answer)."""
    out = []
    for call in sorted((c for c in calls if c.fn in KEYED), key=lambda c: c.sent):
        args = renamed(call, suffix) if suffix else dict(call.args)
        if call.fn not in BATCH:
            args["check"] = False
        out.append((call, getattr(api, call.fn)(**args)))
    return out


def as_dict(value: Any) -> Any:
    """Results of any release's client as plain data, to compare across clients."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [as_dict(v) for v in value]
    return value


# -- a varied book -----------------------------------------------------------------

SHORT_HOLD = dt.timedelta(seconds=1)


def varied_book(rec: Recorder, api) -> list[tuple[str, str]]:
    """Every kind of entry (DEBIT, CREDIT, REVERSAL, ADJUSTMENT of both signs),
    holds active, released, converted whole and in part, expired and swept,
    expired and awaiting the sweep; an overdue policy, a temporary limit in
    force and one that ended, a blocked line and one unblocked, refusals of every
    code, bulk calls, two currencies and two wholesalers. About 1.3 s: holds
    and a limit must run out. Returns the lines (one of them never opened)."""

    def c(fn, **args):
        return rec.call(api, fn, **args)

    today = dt.date.today()
    a, z = "acme", "zenith"
    for r, limit, currency in [("main", 10_000, "INR"), ("quiet", 5_000, "INR"), ("overdue", 3_000, "INR"),
                               ("blocked", 2_000, "INR"), ("reopened", 2_000, "INR"), ("temp", 1_000, "INR"),
                               ("ended", 1_000, "INR"), ("eur", 7_000, "EUR")]:
        c("open_line", wholesaler_id=a, retailer_id=r, credit_limit=D(limit), currency=currency, check=False)
    for r in ("r1", "r2", "r3"):
        c("open_line", wholesaler_id=z, retailer_id=r, credit_limit=D(4_000), payment_terms_days=45, check=False)

    def reserve(r, ref, amount, expires_in=None, w=a):
        return c("reserve_credit", wholesaler_id=w, retailer_id=r, order_ref=ref, amount=D(amount),
                 expires_in=expires_in, check=False)

    def convert(r, ref, amount=None, due=None, w=a):
        return c("convert_to_debit", wholesaler_id=w, retailer_id=r, order_ref=ref,
                 amount=None if amount is None else D(amount), due_date=due, check=False)

    # Holds short-lived enough to run out during the book, made first.
    reserve("main", "m-short", 150, SHORT_HOLD)  # swept later, by a locking call on its line
    reserve("quiet", "q-short", 300, SHORT_HOLD)  # nothing touches its line again: awaits the sweep
    c("set_credit_limit", wholesaler_id=a, retailer_id="ended", credit_limit=D(4_000), reason="fair",
      valid_until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.2), check=False)
    reserve("ended", "e1", 3_000)  # only the temporary limit allows it
    started = time.monotonic()

    reserve("main", "m1", 500)
    convert("main", "m1", due=today - dt.timedelta(days=45))  # whole, long past due
    reserve("main", "m2", 800)
    convert("main", "m2", 300, due=today - dt.timedelta(days=10))  # in part: 500 released
    reserve("main", "m3", 200)
    c("release_reservation", wholesaler_id=a, retailer_id="main", order_ref="m3", reason="cancelled", check=False)
    reserve("main", "m5", 400, dt.timedelta(days=1))
    reserve("main", "m6", 250)
    c("record_payment", wholesaler_id=a, retailer_id="main", payment_ref="mp1", amount=D(200), check=False)
    c("reverse_debit", wholesaler_id=a, retailer_id="main", order_ref="m1", reversal_ref="mr1", amount=D(100),
      reason="returned", check=False)
    c("adjust_balance", wholesaler_id=a, retailer_id="main", adjustment_ref="ma1", amount=D(50),
      reason="late fee", check=False)
    c("adjust_balance", wholesaler_id=a, retailer_id="main", adjustment_ref="ma2", amount=D(-30),
      reason="goodwill", check=False)
    reserve("main", "m7", 99_999)  # insufficient_credit

    reserve("overdue", "d1", 1_000)
    convert("overdue", "d1", due=today - dt.timedelta(days=20))
    c("set_overdue_policy", wholesaler_id=a, retailer_id="overdue", grace_days=5, max_overdue_amount=D(0),
      reason="collections", check=False)
    reserve("overdue", "d2", 100)  # overdue

    c("block_line", wholesaler_id=a, retailer_id="blocked", reason="audit", check=False)
    reserve("blocked", "b1", 100)  # line_blocked
    c("block_line", wholesaler_id=a, retailer_id="reopened", reason="dispute", check=False)
    c("unblock_line", wholesaler_id=a, retailer_id="reopened", reason="settled", check=False)
    reserve("reopened", "u1", 700)

    c("set_credit_limit", wholesaler_id=a, retailer_id="temp", credit_limit=D(3_000), reason="season",
      valid_until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1), check=False)
    reserve("temp", "t1", 2_500)

    reserve("eur", "x1", 600)
    convert("eur", "x1")
    c("record_payment", wholesaler_id=a, retailer_id="eur", payment_ref="xp1", amount=D(900),
      check=False)  # more than owed: unapplied credit

    reserve("nobody", "n1", 10)  # line_not_found: never opened

    # Bulk calls, refusals among their items.
    c("reserve_credit_batch", items=[(z, "r1", "zb1", D(1_000)), (z, "r2", "zb2", D(1_500)),
                                     (z, "r3", "zb3", D(5_000)), (z, "r9", "zb9", D(10)),
                                     (z, "r1", "zb4", D(700))])
    c("convert_to_debit_batch", items=[(z, "r1", "zb1", None), (z, "r2", "zb2", D(900)), (z, "r1", "zb4", D(800))])
    c("record_payment_batch", items=[(z, "r1", "zq1", D(400)), (z, "r2", "zq2", D(100))])
    c("reverse_debit", wholesaler_id=z, retailer_id="r2", order_ref="zb2", reversal_ref="zr1", amount=D(950),
      reason="returned", check=False)  # exceeds_debit_amount

    time.sleep(max(0.0, started + 1.3 - time.monotonic()))
    # Locking calls after the short holds and the temporary limit ran out.
    c("record_payment", wholesaler_id=a, retailer_id="main", payment_ref="mp2", amount=D(50), check=False)
    reserve("ended", "e2", 100)  # insufficient_credit: back to 1,000 with 3,000 held
    return [(a, r) for r in ("main", "quiet", "overdue", "blocked", "reopened", "temp", "ended", "eur", "nobody")] \
        + [(z, r) for r in ("r1", "r2", "r3")]


def expect_book(rec: Recorder) -> list[str]:
    """The book is what varied_book means it to be: what went wrong, else []."""
    codes = {}
    for call in rec.calls:
        for it in items(call) if call.fn in KEYED else []:
            codes[(it.op, it.line[1], it.key)] = it.result.code
    want = {("reserve", "main", "m7"): "insufficient_credit", ("reserve", "overdue", "d2"): "overdue",
            ("reserve", "blocked", "b1"): "line_blocked", ("reserve", "nobody", "n1"): "line_not_found",
            ("reserve", "r3", "zb3"): "insufficient_credit", ("reserve", "r9", "zb9"): "line_not_found",
            ("convert", "r1", "zb4"): "exceeds_reservation_amount", ("reversal", "r2", "zr1"): "exceeds_debit_amount",
            ("reserve", "ended", "e2"): "insufficient_credit"}
    wrong = [f"{k}: {codes.get(k)}, meant {v}" for k, v in want.items() if codes.get(k) != v]
    wrong += [f"{k}: {v}" for k, v in codes.items() if k not in want and v != "ok"]
    wrong += [f"{c.fn} {c.args}: {c.result.code}" for c in rec.calls
              if c.fn not in KEYED and getattr(c.result, "code", "ok") not in ("ok",)]
    return wrong


# What varied_book is for: every state a restore or an upgrade must carry over.
VARIED = {"entry DEBIT", "entry CREDIT", "entry REVERSAL", "entry ADJUSTMENT +", "entry ADJUSTMENT -",
          "hold active", "hold released", "hold converted whole", "hold converted in part", "hold expired, swept",
          "hold expired, awaiting the sweep", "refusal insufficient_credit", "refusal line_blocked",
          "refusal line_not_found", "refusal overdue", "line blocked", "line unblocked", "overdue policy",
          "temporary limit in force", "temporary limit ended", "past due", "unapplied credit", "currencies 2"}


def coverage(conn: psycopg.Connection) -> set[str]:
    """The states a book's tables hold, named as in VARIED."""
    queries = [
        "SELECT DISTINCT 'entry ' || entry_type || CASE WHEN entry_type <> 'ADJUSTMENT' THEN ''"
        " WHEN amount > 0 THEN ' +' ELSE ' -' END FROM credit.ledger_entry",
        "SELECT DISTINCT 'hold ' || CASE"
        " WHEN status = 'active' AND expires_at <= now() THEN 'expired, awaiting the sweep'"
        " WHEN status = 'converted' AND released_amount > 0 THEN 'converted in part'"
        " WHEN status = 'converted' THEN 'converted whole' WHEN status = 'expired' THEN 'expired, swept'"
        " ELSE status END FROM credit.reservation",
        "SELECT DISTINCT 'refusal ' || code FROM credit.refusal",
        "SELECT 'line blocked' FROM credit.line WHERE status = 'blocked'",
        "SELECT 'line unblocked' FROM credit.line_event WHERE kind = 'unblocked'",
        "SELECT 'overdue policy' FROM credit.line WHERE overdue_grace_days IS NOT NULL",
        "SELECT 'temporary limit ' || CASE WHEN valid_until > now() THEN 'in force' ELSE 'ended' END"
        " FROM credit.line_event WHERE valid_until IS NOT NULL",
        "SELECT 'past due' FROM credit.open_item WHERE due_date < current_date",
        "SELECT 'unapplied credit' FROM credit.line WHERE unapplied > 0",
        "SELECT 'currencies ' || count(DISTINCT currency) FROM credit.line",
    ]
    return {row[0] for q in queries for row in conn.execute(q)}


def reads(api, lines, orders, conn: psycopg.Connection | None = None) -> dict[str, Any]:
    """Every read of the book through `api` (and, given a connection, the views
    and the reconcile), as plain data: two copies of a book read the same."""
    today = dt.date.today()
    out: dict[str, Any] = {}

    def read(name, fn, *args, **kwargs):
        try:
            out[name] = as_dict(getattr(api, fn)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - a read that raises must raise the same on both copies
            out[name] = f"raises {type(exc).__name__}: {exc}"

    for w, r in lines:
        read(f"get_available {w}/{r}", "get_available", w, r, check=False)
        read(f"can_reserve {w}/{r}", "can_reserve", w, r, D(100))
        read(f"list_reservations {w}/{r}", "list_reservations", w, r, status=None, max_rows=1000)
        read(f"active reservations {w}/{r}", "list_reservations", w, r, max_rows=1000)
        read(f"statement {w}/{r}", "statement", w, r, dt.date(2000, 1, 1), today + dt.timedelta(days=400))
        read(f"aging {w}/{r}", "aging", wholesaler_id=w, retailer_id=r)
    for w, r, ref in orders:
        read(f"get_reservation {w}/{r}/{ref}", "get_reservation", w, r, ref, check=False)
    # Reads across lines stay within the book's wholesalers: others may be busy meanwhile.
    wholesalers = sorted({w for w, _ in lines})
    for w in wholesalers:
        read(f"list_lines {w}", "list_lines", w, max_rows=1000)
        first = out[f"list_lines {w}"][0]["retailer_id"]
        read(f"list_lines {w}, a page of 2", "list_lines", w, after_retailer_id=first, max_rows=2)
        read(f"aging {w}", "aging", wholesaler_id=w)
        read(f"aging {w} in 60 days", "aging", as_of=today + dt.timedelta(days=60), wholesaler_id=w)
    read("reconcile", "reconcile")
    if conn is not None:
        # The age of the oldest hold is as of now: not a figure two copies share.
        out["line_summary"] = conn.execute(
            "SELECT to_jsonb(s) - 'oldest_active_hold_age' FROM credit.line_summary s WHERE wholesaler_id = ANY(%s)"
            " ORDER BY line_id", [wholesalers]).fetchall()
    return out


def orders_of(rec: Recorder) -> list[tuple[str, str, str]]:
    return sorted({(it.line[0], it.line[1], it.key) for c in rec.keyed() for it in items(c) if it.op == "reserve"})


# -- concurrent traffic ------------------------------------------------------------

TRAFFIC_W = "trade"
TRAFFIC_LIMIT = D(10) ** 12  # nothing is refused, so the model holds in any interleaving
OPS = ["reserve", "release", "convert", "convert_part", "payment", "reversal", "adjust_up", "adjust_down",
       "reserve_batch", "convert_batch", "payment_batch", "read"]
WEIGHTS = [24, 7, 8, 8, 10, 6, 4, 4, 5, 4, 3, 17]


class Traffic:
    """`clients` callers (one thread each, one client each) on `lines` of
    TRAFFIC_W until stop(): reservations (some with an expiry an hour away),
    releases, conversions whole and in part, payments, reversals, adjustments of
    both signs, the three bulk calls and every read. Every call is recorded;
    any exception or refusal is an error of the run."""

    def __init__(self, clients: list, lines: list[str], seed: int = 7):
        self.rec = Recorder()
        self.errors: list[str] = []
        self.lines = lines
        self.seed = seed
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._worker, args=(w, api), daemon=True)
                         for w, api in enumerate(clients)]

    def start(self) -> "Traffic":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _worker(self, w: int, api) -> None:
        rng = random.Random(self.seed * 1000 + w)
        holds: list[tuple[str, str, D]] = []  # (retailer, order_ref, amount), this worker's own
        debits: dict[tuple[str, str], D] = {}  # (retailer, order_ref) -> what may still be reversed
        n = 0

        def call(fn, **args):
            try:
                res = self.rec.call(api, fn, w, **args)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                self.errors.append(f"{fn} {args}: {exc!r}")
                return None
            for one in res if isinstance(res, list) else [res]:
                if getattr(one, "code", "ok") != "ok":
                    self.errors.append(f"{fn} {args}: {one.code}")
                    return None
            return res

        def take_hold():
            return holds.pop(rng.randrange(len(holds))) if holds else None

        while not self._stop.is_set():
            n += 1
            op = rng.choices(OPS, WEIGHTS)[0]
            r = rng.choice(self.lines)
            if op == "reserve":
                amount = D(rng.randrange(100, 5_000))
                expiry = dt.timedelta(hours=1) if rng.random() < 0.2 else None
                if call("reserve_credit", wholesaler_id=TRAFFIC_W, retailer_id=r, order_ref=f"o{w}-{n}",
                        amount=amount, expires_in=expiry, check=False):
                    holds.append((r, f"o{w}-{n}", amount))
            elif op == "release" and holds:
                hr, ref, _ = take_hold()
                call("release_reservation", wholesaler_id=TRAFFIC_W, retailer_id=hr, order_ref=ref, reason="cancelled",
                     check=False)
            elif op in ("convert", "convert_part") and holds:
                hr, ref, amount = take_hold()
                part = None if op == "convert" else D(rng.randrange(1, int(amount)))
                res = call("convert_to_debit", wholesaler_id=TRAFFIC_W, retailer_id=hr, order_ref=ref, amount=part,
                           check=False)
                if res:
                    debits[(hr, ref)] = res.debited_amount
            elif op == "payment":
                call("record_payment", wholesaler_id=TRAFFIC_W, retailer_id=r, payment_ref=f"p{w}-{n}",
                     amount=D(rng.randrange(10, 3_000)), check=False)
            elif op == "reversal" and debits:
                (dr, ref), left = rng.choice(list(debits.items()))
                amount = min(left, D(rng.randrange(1, 500)))
                if call("reverse_debit", wholesaler_id=TRAFFIC_W, retailer_id=dr, order_ref=ref,
                        reversal_ref=f"v{w}-{n}", amount=amount, reason="returned", check=False):
                    debits[(dr, ref)] = left - amount
                    if left == amount:
                        del debits[(dr, ref)]
            elif op in ("adjust_up", "adjust_down"):
                sign = 1 if op == "adjust_up" else -1
                call("adjust_balance", wholesaler_id=TRAFFIC_W, retailer_id=r, adjustment_ref=f"a{w}-{n}",
                     amount=sign * D(rng.randrange(1, 300)), reason="fee" if sign > 0 else "goodwill", check=False)
            elif op == "reserve_batch":
                batch = [(TRAFFIC_W, rng.choice(self.lines), f"b{w}-{n}-{i}", D(rng.randrange(100, 2_000)))
                         for i in range(rng.randint(2, 4))]
                if call("reserve_credit_batch", items=batch):
                    holds.extend((br, ref, amount) for _, br, ref, amount in batch)
            elif op == "convert_batch" and len(holds) >= 2:
                chosen = [take_hold() for _ in range(2)]
                batch = [(TRAFFIC_W, hr, ref, None if i == 0 else D(rng.randrange(1, int(amount))))
                         for i, (hr, ref, amount) in enumerate(chosen)]
                res = call("convert_to_debit_batch", items=batch)
                for (_, hr, ref, _), one in zip(batch, res or []):
                    debits[(hr, ref)] = one.debited_amount
            elif op == "payment_batch":
                call("record_payment_batch", items=[(TRAFFIC_W, rng.choice(self.lines), f"q{w}-{n}-{i}",
                                                     D(rng.randrange(10, 1_000))) for i in range(rng.randint(2, 4))])
            elif op == "read":
                self._read(call, rng, r, holds)

    @staticmethod
    def _read(call, rng: random.Random, r: str, holds) -> None:
        kind = rng.randrange(7)
        if kind == 0:
            call("get_available", wholesaler_id=TRAFFIC_W, retailer_id=r)
        elif kind == 1:
            call("can_reserve", wholesaler_id=TRAFFIC_W, retailer_id=r, amount=D(100))
        elif kind == 2 and holds:
            hr, ref, _ = rng.choice(holds)
            call("get_reservation", wholesaler_id=TRAFFIC_W, retailer_id=hr, order_ref=ref)
        elif kind == 3:
            call("list_reservations", wholesaler_id=TRAFFIC_W, retailer_id=r, max_rows=20)
        elif kind == 4:
            call("list_lines", wholesaler_id=TRAFFIC_W)
        elif kind == 5:
            today = dt.date.today()
            call("statement", wholesaler_id=TRAFFIC_W, retailer_id=r, from_date=today, to_date=today)
        else:
            call("aging", wholesaler_id=TRAFFIC_W, retailer_id=r)


def open_traffic_lines(api, lines: list[str]) -> None:
    for r in lines:
        assert api.open_line(TRAFFIC_W, r, TRAFFIC_LIMIT).code == "ok"
