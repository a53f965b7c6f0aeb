"""Workloads and the history checker behind test_reliability.py.

Workers record every outcome the database acknowledged. The checker then
derives, from those acknowledgements alone, what each line's totals must be and
compares with the database; it also looks for refs resolved twice, for effects
the database holds that nobody was told of (phantoms), for acknowledged effects
it lacks (lost) and for one logical operation applied twice (duplicates).
"""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any, Callable

import psycopg
from psycopg.rows import tuple_row

from pgcredit import CreditBusy, CreditClient, CreditError, OutcomeUnknown, Retry
from support.mutation import install_variant

W = "wholesaler"
REPORTS: list[str] = []  # printed at the end of the session by conftest


def report(text: str) -> None:
    REPORTS.append(text)
    print(text)


@dataclass(frozen=True)
class Ack:
    op: str  # reserve | release | convert | payment | reversal | adjustment
    line: str
    ref: str  # the key sent
    logical: str  # the operation it belongs to: ref, unless retried under a new key
    amount: D | None  # what was asked (convert: None means the whole hold)
    result: Any


class History:
    def __init__(self) -> None:
        self.acks: list[Ack] = []
        self.counts: collections.Counter = collections.Counter()
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def ack(self, op, line, ref, amount, result, logical=None) -> None:
        with self._lock:
            self.acks.append(Ack(op, line, ref, logical or ref, amount, result))

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)


def model(acks: list[Ack]) -> dict[str, tuple[D, D]]:
    """Each line's (reserved, outstanding) as the acknowledged history implies.
    An operation counts once however many acks (replays) it got."""
    holds: dict[tuple[str, str], D] = {}
    ended: set[tuple[str, str]] = set()
    outstanding: dict[str, D] = collections.defaultdict(D)
    seen: set[tuple[str, str, str]] = set()
    for a in acks:
        if a.result.code != "ok" or (a.op, a.line, a.ref) in seen:
            continue
        seen.add((a.op, a.line, a.ref))
        if a.op == "reserve":
            holds[(a.line, a.ref)] = a.result.amount
        elif a.op in ("release", "convert"):
            ended.add((a.line, a.ref))
            if a.op == "convert":
                outstanding[a.line] += a.result.debited_amount
        elif a.op in ("payment", "reversal"):
            outstanding[a.line] -= a.amount
        elif a.op == "adjustment":
            outstanding[a.line] += a.amount
    reserved: dict[str, D] = collections.defaultdict(D)
    for (line, ref), amount in holds.items():
        if (line, ref) not in ended:
            reserved[line] += amount
    lines = set(reserved) | set(outstanding) | {a.line for a in acks}
    return {line: (reserved[line], outstanding[line]) for line in lines}


def history_violations(acks: list[Ack]) -> list[str]:
    """Refs applied or resolved more than once, as the acknowledgements tell it."""
    found = []
    applied: collections.Counter = collections.Counter()
    for a in acks:
        if a.result.code == "ok" and not a.result.replayed:
            applied[(a.op, a.line, a.ref)] += 1
    for (op, line, ref), n in applied.items():
        if n > 1:
            found.append(f"{op} of {line}/{ref} applied {n} times")
        if op == "release" and applied[("convert", line, ref)]:
            found.append(f"{line}/{ref} both released and converted")
    return found


def lines_relation(conn: psycopg.Connection) -> str:
    """Where the lines' figures are read: the table on a single server; through
    a proxy, which has no tables, line_summary (rows from every partition)."""
    on_server = conn.cursor(row_factory=tuple_row).execute("SELECT to_regclass('credit.line') IS NOT NULL").fetchone()[0]
    return "credit.line" if on_server else "credit.line_summary"


def database_violations(conn: psycopg.Connection, acks: list[Ack]) -> list[str]:
    found = []
    expected = model(acks)
    cur = conn.cursor(row_factory=tuple_row)
    for row in cur.execute(f"SELECT retailer_id, reserved, outstanding FROM {lines_relation(conn)} "
                           "WHERE wholesaler_id = %s", [W]):
        want = expected.get(row[0], (D(0), D(0)))
        if (row[1], row[2]) != want:
            found.append(f"line {row[0]}: reserved/outstanding {row[1]}/{row[2]}, history implies {want[0]}/{want[1]}")
    found += [f"reconcile: {r[0]} {r[1]}/{r[2]} {r[5]}" for r in cur.execute("SELECT * FROM credit.reconcile()")]
    return found


def open_lines(dsn: str, limits: dict[str, D]) -> None:
    client = CreditClient(dsn)
    for line, limit in limits.items():
        client.open_line(W, line, limit)
    client.close()


class Sampler(threading.Thread):
    """Reads every line continuously: reserved + outstanding must never exceed the limit."""

    def __init__(self, dsn: str, history: History):
        super().__init__(daemon=True)
        self.dsn, self.history, self.stop = dsn, history, threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            relation = lines_relation(conn)
            while not self.stop.is_set():
                rows = conn.execute(f"SELECT retailer_id, reserved + outstanding, credit_limit FROM {relation} "
                                    "WHERE wholesaler_id = %s", [W]).fetchall()
                self.history.count("samples")
                for line, exposure, limit in rows:
                    if exposure > limit:
                        self.history.count("sampled_overspend")
                        if self.history.counts["sampled_overspend"] <= 20:  # the first ones say enough
                            self.history.error(f"sampled {line}: reserved + outstanding {exposure} > limit {limit}")
                time.sleep(0.0005)  # lets the workers' threads run (the GIL)


# -- T1: contention ---------------------------------------------------------------

OPS = ["reserve", "pair", "release", "convert_full", "convert_partial", "payment", "reversal", "adjustment",
       "reserve_batch", "convert_batch", "payment_batch"]
WEIGHTS = [26, 6, 12, 9, 9, 14, 6, 6, 6, 3, 3]
HOT, COLD = "hot", [f"cold{i}" for i in range(4)]
LIMITS = {HOT: D(2_500), **{c: D(1_200) for c in COLD}}


class Pools:
    """Holds and debits any worker may act on, so workers collide on refs too."""

    def __init__(self) -> None:
        self.holds: list[tuple[str, str]] = []
        self.debits: list[tuple[str, str, D]] = []
        self.lock = threading.Lock()

    def pick(self, items: list, rng: random.Random):
        with self.lock:
            return rng.choice(items) if items else None

    def drop(self, items: list, item) -> None:
        with self.lock:
            if item in items:
                items.remove(item)

    def add(self, items: list, item) -> None:
        with self.lock:
            items.append(item)


def _run_workers(worker, workers: int, sampler: Sampler, history: History) -> History:
    """A T1 run: every worker to its end, then the exposure sampler stopped."""
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.stop.set()
    sampler.join()
    history.count("seconds", round(time.monotonic() - started))
    return history


PAIR_TIMEOUT = 60.0  # seconds a worker waits at a pair's barrier for its partner


def contention(dsn: str, workers: int, ops: int, seed: int = 1, hot: str = HOT,
               cold: list[str] = COLD, weights: list[int] | None = None) -> History:
    """T1: `workers` threads x `ops` mixed operations on 1 hot and 4 cold lines
    (other names place them elsewhere: on every partition of a proxy). The
    bulk calls take part: each item of a batch is acknowledged like the
    single call it stands for.

    Workers 2j and 2j+1 form a pair. Whether step k is a "pair" step is drawn
    from a random stream the two share, with the weight of "pair" in the mix:
    at such a step both send the same reservation at the same moment (a
    barrier), so that share of the operations really is one reservation sent
    twice at once. A broken barrier (a partner that never came) is an error
    of the run."""
    history, pools = History(), Pools()
    open_lines(dsn, {hot: LIMITS[HOT], **{c: LIMITS[COLD[0]] for c in cold}})
    weights = weights or WEIGHTS
    pair_share = weights[OPS.index("pair")] / sum(weights)
    own_ops = [op for op in OPS if op != "pair"]
    own_weights = [wt for op, wt in zip(OPS, weights) if op != "pair"]
    pairs = [threading.Barrier(2) for _ in range(workers // 2)]
    sampler = Sampler(dsn, history)
    sampler.start()

    def counted(name, attempt, exc):
        history.count("client_retries")

    retry = Retry(on_retry=counted)

    def worker(w: int) -> None:
        rng = random.Random(seed * 1000 + w)
        client = CreditClient(dsn, retry=retry)
        for k in range(ops):
            paired = w // 2 < len(pairs) and random.Random(f"{seed}-{w // 2}-{k}").random() < pair_share
            op = "pair" if paired else rng.choices(own_ops, own_weights)[0]
            line = hot if rng.random() < 0.5 else rng.choice(cold)
            try:
                step(client, history, pools, rng, op, line, w, k, pairs)
            except CreditError as exc:
                if isinstance(exc, CreditBusy):
                    history.count("credit_busy")
                history.error(f"{op}: {exc!r}")
            except threading.BrokenBarrierError:
                history.error(f"pair step {k} of worker {w}: its partner did not come within {PAIR_TIMEOUT} s")
                break
        client.close()

    def step(client, history, pools, rng, op, line, w, k, pairs):
        if op == "pair":
            # Both workers of a pair send the same reservation at the same moment.
            shared = random.Random(f"{seed}-{w // 2}-{k}-what")
            line, ref, amount = shared.choice([hot, *cold]), f"pair{w // 2}-{k}", D(shared.randrange(100, 2000))
            pairs[w // 2].wait(timeout=PAIR_TIMEOUT)
            reserve(client, history, pools, line, ref, amount)
            history.count("pair_sends")
        elif op == "reserve":
            reserve(client, history, pools, line, f"r{w}-{k}", D(rng.randrange(100, 2000)))
        elif op in ("release", "convert_full", "convert_partial"):
            hold = pools.pick(pools.holds, rng)
            if hold is None:
                return
            hline, ref = hold
            if op == "release":
                res = client.release_reservation(W, hline, ref, "cancelled", check=False)
                history.ack("release", hline, ref, None, res)
            else:
                amount = None
                if op == "convert_partial":
                    amount = D(rng.randrange(1, 100))  # may exceed the hold: exceeds_reservation_amount
                res = client.convert_to_debit(W, hline, ref, amount, check=False)
                history.ack("convert", hline, ref, amount, res)
                if res.code == "ok" and not res.replayed:
                    pools.add(pools.debits, (hline, ref, res.debited_amount))
            if res.code != "exceeds_reservation_amount":
                pools.drop(pools.holds, hold)
        elif op == "payment":
            # Retailers pay what they owe, so the lines stay near their limits.
            owed = client.get_available(W, line).outstanding
            if owed > 0:
                ref, amount = f"p{w}-{k}", min(owed, D(rng.randrange(100, 1500)))
                history.ack("payment", line, ref, amount, client.record_payment(W, line, ref, amount, check=False))
        elif op == "reversal":
            debit = pools.pick(pools.debits, rng)
            if debit is None:
                return
            dline, order, debited = debit
            ref, amount = f"v{w}-{k}", D(rng.randrange(1, int(debited) + 2))  # may exceed what is left
            res = client.reverse_debit(W, dline, order, ref, amount, "returned", check=False)
            history.ack("reversal", dline, ref, amount, res)
        elif op == "reserve_batch":
            # New orders on any lines, hot ones too; now and then the key of an
            # earlier hold, mostly with another amount (exists_with_different_amount).
            items = []
            for i in range(rng.randint(2, 5)):
                hold = pools.pick(pools.holds, rng) if rng.random() < 0.15 else None
                iline, ref = hold or (hot if rng.random() < 0.5 else rng.choice(cold), f"b{w}-{k}-{i}")
                items.append((W, iline, ref, D(rng.randrange(100, 1200))))
            for (_, iline, ref, amount), res in zip(items, client.reserve_credit_batch(items)):
                history.ack("reserve", iline, ref, amount, res)
                if res.code == "ok" and not res.replayed:
                    pools.add(pools.holds, (iline, ref))
        elif op == "convert_batch":
            holds = [h for h in (pools.pick(pools.holds, rng) for _ in range(rng.randint(2, 4))) if h is not None]
            if not holds:
                return
            items = [(W, hline, ref, None if rng.random() < 0.5 else D(rng.randrange(1, 100)))
                     for hline, ref in dict.fromkeys(holds)]
            for (_, hline, ref, amount), res in zip(items, client.convert_to_debit_batch(items)):
                history.ack("convert", hline, ref, amount, res)
                if res.code == "ok" and not res.replayed:
                    pools.add(pools.debits, (hline, ref, res.debited_amount))
                if res.code != "exceeds_reservation_amount":
                    pools.drop(pools.holds, (hline, ref))
        elif op == "payment_batch":
            items = []
            for i in range(rng.randint(2, 4)):
                pline = hot if rng.random() < 0.5 else rng.choice(cold)
                owed = client.get_available(W, pline).outstanding
                if owed > 0:
                    items.append((W, pline, f"q{w}-{k}-{i}", min(owed, D(rng.randrange(100, 800)))))
            if items:
                for (_, pline, ref, amount), res in zip(items, client.record_payment_batch(items)):
                    history.ack("payment", pline, ref, amount, res)
        elif op == "adjustment":
            ref, amount = f"a{w}-{k}", -D(rng.randrange(1, 300))  # credits only: exposure stays within limits
            history.ack("adjustment", line, ref, amount, client.adjust_balance(W, line, ref, amount, "goodwill",
                                                                                check=False))

    return _run_workers(worker, workers, sampler, history)


def reserve(client, history, pools, line, ref, amount):
    res = client.reserve_credit(W, line, ref, amount, check=False)
    history.ack("reserve", line, ref, amount, res)
    if res.code == "ok" and not res.replayed:
        pools.add(pools.holds, (line, ref))


def pair_steps(workers: int, ops: int, seed: int = 1, weights: list[int] | None = None) -> int:
    """How many pair steps contention() makes: each is one reservation sent by two workers at once."""
    weights = weights or WEIGHTS
    share = weights[OPS.index("pair")] / sum(weights)
    return sum(random.Random(f"{seed}-{j}-{k}").random() < share for j in range(workers // 2) for k in range(ops))


def pair_meetings(history: History) -> collections.Counter:
    """How the pair steps' reservations were answered: for each pair key sent
    by both workers, the sorted (code, replayed) of the two answers (its first
    two: a bulk reservation may send the key again later)."""
    answers = collections.defaultdict(list)
    for a in history.acks:
        if a.op == "reserve" and a.ref.startswith("pair"):
            answers[a.ref].append((a.result.code, bool(a.result.replayed)))
    return collections.Counter(tuple(sorted(v[:2])) for v in answers.values() if len(v) >= 2)


def check_t1(history, ops: int, workers: int = 16) -> None:
    """What a T1 run must have done, besides finding no violation: the
    direct run (test_reliability.py) and the one through the proxy (test_proxy.py)."""
    codes = collections.Counter((a.op, a.result.code) for a in history.acks)
    reserves = sum(n for (op, _), n in codes.items() if op == "reserve")
    assert 0.3 <= codes[("reserve", "insufficient_credit")] / reserves <= 0.7  # about half refused
    for op in ("reserve", "release", "convert", "payment", "reversal", "adjustment"):
        assert codes[(op, "ok")] > 0, op
    assert history.counts["samples"] > 10
    booked = {a.ref[0] for a in history.acks if a.result.code == "ok" and not a.result.replayed}
    assert {"b", "q"} <= booked  # items of reserve and payment batches were booked
    # Every pair step met: both workers sent its reservation, at about the share the mix gives
    # "pair" (6%), and some were booked by one and answered as a replay to the other.
    met = pair_meetings(history)
    expected = pair_steps(workers, ops)
    assert sum(met.values()) == expected and 0.04 <= 2 * expected / (workers * ops) <= 0.08
    assert met[(("ok", False), ("ok", True))] > 0


def contention_report(name: str, history: History, violations: list[str]) -> str:
    codes = collections.Counter((a.op, a.result.code) for a in history.acks)
    reserves = sum(n for (op, _), n in codes.items() if op == "reserve")
    refused = codes[("reserve", "insufficient_credit")]
    c = history.counts
    met = pair_meetings(history)
    return (f"{name}: {len(history.acks)} ops acknowledged in {c['seconds']} s, "
            f"{reserves} reservations of which {refused} refused ({100 * refused // max(reserves, 1)}%), "
            f"{sum(met.values())} reservations sent by two workers at once "
            f"({c['pair_sends']} of {len(history.acks)} acks; answered ok+replay "
            f"{met[(('ok', False), ('ok', True))]}, both refused {met[(('insufficient_credit', False),) * 2]}), "
            f"{c['samples']} exposure samples, client retries {c['client_retries']}, "
            f"CreditBusy {c['credit_busy']}, violations {len(violations)}")


# -- T2: faults -------------------------------------------------------------------

FAULT_LIMITS = {HOT: D(10) ** 12, **{c: D(10) ** 12 for c in COLD[:3]}}


def run_orders(client: CreditClient, history: History, rng: random.Random, stop: threading.Event, w: int,
               new_key: bool = False, drop_rate: float = 0.05, give_up_after: float = 120.0) -> None:
    """One worker of order lifecycles until `stop`: reserve, then convert (half
    partially) or release; a payment every third order. `drop_rate` of the
    acknowledgements are dropped on purpose after the commit. Every unknown
    outcome is called again until known, with the same key (or, with
    `new_key`, reservations and payments under a new one)."""

    def resolve(op: str, line: str, logical: str, amount, call: Callable[[str], Any]):
        """Calls until the outcome is known; returns (result, the key that got it)."""
        ref, tries, since = logical, 0, time.monotonic()
        while True:
            try:
                res = call(ref)
            except (CreditBusy, OutcomeUnknown) as exc:
                # The client gave up, or the commit was not confirmed: it may or may not have happened.
                outcome_unknown = True
                history.count("credit_busy" if isinstance(exc, CreditBusy) else "unconfirmed_commits")
            except CreditError as exc:
                history.error(f"{op} {logical}: {exc!r}")
                return None, ref
            else:
                outcome_unknown = rng.random() < drop_rate  # the ack is dropped after commit
                if outcome_unknown:
                    history.count("dropped_acks")
            if not outcome_unknown:
                history.ack(op, line, ref, amount, res, logical)
                return res, ref
            history.count("unknown_outcomes")
            if time.monotonic() - since > give_up_after:
                # A failure of the run, not an answer: the checker cannot judge this operation.
                history.error(f"{op} {logical}: outcome still unknown after {give_up_after} s")
                return None, ref
            tries += 1
            if new_key and op in ("reserve", "payment"):
                ref = f"{logical}~{tries}"
            time.sleep(0.02)

    n = 0
    while not stop.is_set():
        n += 1
        line = HOT if rng.random() < 0.5 else rng.choice(COLD[:3])
        amount = D(rng.randrange(100, 5000))
        res, order = resolve("reserve", line, f"o{w}-{n}", amount,
                             lambda ref: client.reserve_credit(W, line, ref, amount, check=False))
        if res is not None and res.code == "ok":
            if rng.random() < 0.7:
                part = None if rng.random() < 0.5 else amount - 1
                resolve("convert", line, order, part,
                        lambda ref: client.convert_to_debit(W, line, ref, part, check=False))
            else:
                resolve("release", line, order, None,
                        lambda ref: client.release_reservation(W, line, ref, check=False))
        if n % 3 == 0:
            pay = D(rng.randrange(100, 3000))
            resolve("payment", line, f"p{w}-{n}", pay,
                    lambda ref: client.record_payment(W, line, ref, pay, check=False))


def faults(server, dsn: str, seconds: float, workers: int = 8, new_key: bool = False,
           seed: int = 2) -> History:
    """T2: workers run order lifecycles while a killer terminates backends every
    0.3 s, the server crashes (immediate shutdown) and restarts twice, short lock
    and statement timeouts fire, and 5% of acknowledgements are dropped after
    commit. Every unknown outcome is retried, with the same key (or, to show what
    that prevents, with a new one)."""
    history = History()
    open_lines(dsn, FAULT_LIMITS)
    stop = threading.Event()

    def counted(name, attempt, exc):
        history.count("client_retries")
        history.count(f"client_retry_{getattr(exc, 'sqlstate', None) or 'connection'}")

    retry = Retry(attempts=4, base_delay=0.02, max_delay=0.2, on_retry=counted)
    # Half the workers wait briefly for locks, half run under a statement timeout
    # shorter than their lock bound: both timeouts fire.
    options = ["-c credit.lock_timeout=2ms -c statement_timeout=5s",
               "-c credit.lock_timeout=1s -c statement_timeout=3ms"]

    def worker(w: int) -> None:
        client = CreditClient(psycopg.conninfo.make_conninfo(dsn, application_name="t2-worker",
                                                             options=options[w % 2]), retry=retry)
        run_orders(client, history, random.Random(seed * 1000 + w), stop, w, new_key=new_key)
        client.close()

    def killer() -> None:
        rng = random.Random(seed)
        while not stop.wait(0.3):
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
                    pids = [r[0] for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = 't2-worker'")]
                    if pids:
                        conn.execute("SELECT pg_terminate_backend(%s)", [rng.choice(pids)])
                        history.count("backends_killed")
            except psycopg.Error:
                pass  # the server is down for a restart

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    threads.append(threading.Thread(target=killer))
    started = time.monotonic()
    for t in threads:
        t.start()
    for at in (seconds / 3, 2 * seconds / 3):
        time.sleep(max(0.0, started + at - time.monotonic()))
        server.stop("immediate")  # a crash: the server recovers from its WAL
        server.start("fsync=off")
        history.count("server_crashes")
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    stop.set()
    for t in threads:
        t.join()
    history.count("seconds", round(time.monotonic() - started))
    return history


def orders(dsn: str, seconds: float, workers: int = 4, seed: int = 5) -> History:
    """T2's order lifecycles (5% of acknowledgements dropped, resolved with
    the same key) without the faults: for the checker's self-checks against
    broken variants, which need no crash to show."""
    history = History()
    open_lines(dsn, FAULT_LIMITS)
    stop = threading.Event()

    def worker(w: int) -> None:
        client = CreditClient(dsn)
        run_orders(client, history, random.Random(seed * 1000 + w), stop, w)
        client.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return history


# Deliberately broken variants of release_reservation, for the fault checker's
# self-checks: one that releases the hold but answers as if there were none
# (the database holds an effect nobody was told of: phantom), and one that
# answers ok but leaves the hold active (an acknowledged effect missing: lost).
RELEASE_UNTOLD = ("release_reservation.sql", ("    RETURN ('ok', h.id, 'released',",
                                              "    RETURN ('reservation_not_found', h.id, 'released',"))
RELEASE_NOT_DONE = ("release_reservation.sql", ("AND r.order_ref = h.order_ref;\n    UPDATE credit.line",
                                                "AND r.order_ref = h.order_ref AND false;\n    UPDATE credit.line"))


def fault_violations(conn: psycopg.Connection, history: History) -> dict[str, list[str]]:
    """lost: acknowledged, not in the database. phantom: in the database, never
    acknowledged. duplicate: one logical operation applied more than once."""
    out: dict[str, list[str]] = {"lost": [], "phantom": [], "duplicate": []}
    cur = conn.cursor(row_factory=tuple_row)
    final = {}  # (op, logical) -> the ack that resolved it
    for a in history.acks:
        final[(a.op, a.logical)] = a
    holds = collections.defaultdict(list)
    for ref, status, converted in cur.execute(
            "SELECT r.order_ref, r.status, r.converted_amount FROM credit.reservation r JOIN credit.line l "
            "ON l.id = r.line_id WHERE l.wholesaler_id = %s", [W]):
        holds[ref.split("~")[0]].append((ref, status, converted))
    credits = collections.defaultdict(list)
    for (ref,) in cur.execute("SELECT ref FROM credit.ledger_entry WHERE entry_type = 'CREDIT'"):
        credits[ref.split("~")[0]].append(ref)

    for logical, rows in holds.items():
        a = final.get(("reserve", logical))
        if a is None or a.result.code != "ok":
            out["phantom"].append(f"hold {logical} was never acknowledged")
            continue
        if len(rows) > 1:
            out["duplicate"].append(f"order {logical} holds credit {len(rows)} times: {[r[0] for r in rows]}")
        mine = [r for r in rows if r[0] == a.ref]
        if not mine:
            out["lost"].append(f"hold {a.ref} acknowledged, not found")
            continue
        status, want = mine[0][1], "active"
        for op, done in (("convert", "converted"), ("release", "released")):
            e = final.get((op, a.ref))
            if e is not None and e.result.code == "ok":
                want = done
        if status != want:
            (out["phantom"] if want == "active" else out["lost"]).append(
                f"hold {a.ref} is {status}, acknowledgements say {want}")
    for (op, logical), a in final.items():
        if op == "reserve" and a.result.code == "ok" and logical not in holds:
            out["lost"].append(f"hold {logical} acknowledged, not found")
        if op == "payment" and a.result.code == "ok":
            refs = credits.get(logical, [])
            if a.ref not in refs:
                out["lost"].append(f"payment {a.ref} acknowledged, not found")
            if len(refs) > 1:
                out["duplicate"].append(f"payment {logical} booked {len(refs)} times")
    for logical in credits:
        if ("payment", logical) not in final:
            out["phantom"].append(f"payment {logical} was never acknowledged")
    return out


def fault_report(name: str, history: History, found: dict[str, list[str]], other: list[str]) -> str:
    c = history.counts
    retry_kinds = ", ".join(f"{k.removeprefix('client_retry_')} {v}" for k, v in sorted(c.items())
                            if k.startswith("client_retry_"))
    return (f"{name}: {len(history.acks)} ops acknowledged in {c['seconds']} s; faults injected: "
            f"{c['backends_killed']} backends killed, {c['server_crashes']} crash restarts, "
            f"{c['dropped_acks']} acks dropped; unknown outcomes {c['unknown_outcomes']}; "
            f"client retries {c['client_retries']} ({retry_kinds}); lost {len(found['lost'])}, "
            f"phantom {len(found['phantom'])}, duplicate {len(found['duplicate'])}, "
            f"other violations {len(other)}")


def quick_deadlock_detection(conn: psycopg.Connection) -> None:
    """For a broken variant's self-check: without the line lock first, calls
    lock rows in any order and deadlock, and each deadlock waited
    deadlock_timeout (1 s) before PostgreSQL broke it; these self-checks were
    the slowest tests of the suite. New sessions of this database wait 50 ms."""
    conn.execute("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET deadlock_timeout = %L', "
                 "current_database(), '50ms'); END $$")


def unlock_reserve_credit_batch(conn: psycopg.Connection) -> None:
    """A deliberately broken variant, for self-checks, in this database only:
    reserve_credit_batch's fast path reads its lines without locking them and
    adds its items later, with the gap a loaded machine would leave."""
    install_variant(conn, "reserve_credit_batch.sql",
                    ("ORDER BY x.id\n           FOR NO KEY UPDATE),", "ORDER BY x.id),"),
                    ("    IF v_inserted = v_n AND v_clean THEN\n",
                     "    IF v_inserted = v_n AND v_clean THEN\n        PERFORM pg_sleep(0.02);\n"))


def unlock_reserve_credit(conn: psycopg.Connection) -> None:
    """A deliberately broken variant, for self-checks, in this database only:
    every reservation takes the careful path, which reads the line without its
    row lock, and the gap between the credit check and the write is widened as
    a loaded machine would. (The fast path checks the credit inside the UPDATE
    that takes the lock; it is switched off here.)"""
    install_variant(conn, "_lock_line.sql", ("FOR NO KEY UPDATE", ""))
    quick_deadlock_detection(conn)
    install_variant(conn, "reserve_credit.sql",
                    ("x.retailer_id = reserve_credit.retailer_id\n        ON CONFLICT",
                     "x.retailer_id = reserve_credit.retailer_id AND false\n        ON CONFLICT"),
                    ("    INSERT INTO credit.reservation (line_id, order_ref, amount, expires_at)\n    VALUES",
                     "    PERFORM pg_sleep(0.02);\n"
                     "    INSERT INTO credit.reservation (line_id, order_ref, amount, expires_at)\n    VALUES"))


# -- T1 for orders as they happen (SPEC v1.2) ------------------------------------------
#
# Amendments race reservations on nearly full lines, shipments race releases
# and final conversions of the same holds, payments (some naming invoices)
# free credit. Acknowledgements are kept as above: op amend (ref: the
# amend_ref, logical: the order) and ship (ref: the shipment_ref, logical:
# the order) join reserve, convert (final), release and payment.

ORDER_OPS = ["reserve", "raise", "cut", "ship", "final", "release", "payment", "remit"]
ORDER_WEIGHTS = [22, 22, 10, 16, 4, 8, 12, 6]
ORDER_LIMITS = {HOT: D(3_000), **{c: D(1_500) for c in COLD}}
REFUSALS = ("insufficient_credit", "line_blocked", "overdue")


class OrderPools:
    """The holds workers act on (with the amount last seen), and the DEBITs."""

    def __init__(self) -> None:
        self.holds: dict[tuple[str, str], D] = {}
        self.debits: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def pick(self, rng: random.Random):
        with self.lock:
            return rng.choice(list(self.holds.items())) if self.holds else None

    def seen(self, hold: tuple[str, str], amount: D | None) -> None:
        with self.lock:
            if amount is None:
                self.holds.pop(hold, None)
            elif hold in self.holds:
                self.holds[hold] = amount

    def add(self, hold: tuple[str, str], amount: D) -> None:
        with self.lock:
            self.holds[hold] = amount

    def debit(self, line: str, ref: str) -> None:
        with self.lock:
            self.debits.append((line, ref))

    def pick_debit(self, rng: random.Random, line: str):
        with self.lock:
            mine = [ref for dline, ref in self.debits if dline == line]
            return rng.choice(mine) if mine else None


def order_contention(dsn: str, workers: int, ops: int, seed: int = 1, hot: str = HOT,
                     cold: list[str] = COLD, weights: list[int] | None = None) -> History:
    """T1 for orders: `workers` threads x `ops` operations on 1 hot and 4 cold
    lines kept nearly full: new orders, raises and cuts of existing ones,
    shipments in parts, final conversions and releases of the same holds,
    payments (some naming an invoice)."""
    history, pools = History(), OrderPools()
    open_lines(dsn, {hot: ORDER_LIMITS[HOT], **{c: ORDER_LIMITS[COLD[0]] for c in cold}})
    sampler = Sampler(dsn, history)
    sampler.start()

    def worker(w: int) -> None:
        rng = random.Random(seed * 1000 + w)
        client = CreditClient(dsn)
        for k in range(ops):
            op = rng.choices(ORDER_OPS, weights or ORDER_WEIGHTS)[0]
            line = hot if rng.random() < 0.5 else rng.choice(cold)
            try:
                order_step(client, history, pools, rng, op, line, f"{w}-{k}")
            except CreditError as exc:
                history.error(f"{op}: {exc!r}")
        client.close()

    return _run_workers(worker, workers, sampler, history)


def order_step(client, history: History, pools: OrderPools, rng: random.Random, op: str, line: str,
               key: str) -> None:
    if op == "reserve":
        ref, amount = f"r{key}", D(rng.randrange(100, 900))
        res = client.reserve_credit(W, line, ref, amount, check=False)
        history.ack("reserve", line, ref, amount, res)
        if res.code == "ok" and not res.replayed:
            pools.add((line, ref), amount)
        return
    if op in ("payment", "remit"):
        owed = client.get_available(W, line).outstanding
        if owed <= 0:
            return
        ref, amount = f"p{key}", min(owed, D(rng.randrange(100, 1200)))
        named = pools.pick_debit(rng, line) if op == "remit" else None
        res = client.record_payment(W, line, ref, amount, [named] if named else None, check=False)
        history.ack("payment", line, ref, amount, res)
        return
    picked = pools.pick(rng)
    if picked is None:
        return
    (hline, order), known = picked
    if op in ("raise", "cut"):
        change = D(rng.randrange(50, 700))
        amount = known + change if op == "raise" else max(known - change, D("10.00"))
        ref = f"m{key}"
        res = client.amend_reservation(W, hline, order, amount, ref, check=False)
        history.ack("amend", hline, ref, amount, res, logical=order)
        pools.seen((hline, order), res.amount if res.status == "active" else None)
    elif op == "ship":
        ref, amount = f"s{key}", D(rng.randrange(10, 400))
        res = client.convert_to_debit(W, hline, order, amount, shipment_ref=ref, check=False)
        history.ack("ship", hline, ref, amount, res, logical=order)
        if res.code == "ok" and not res.replayed:
            pools.debit(hline, ref)
        if res.code not in ("ok", "exceeds_reservation_amount") or res.status != "active":
            pools.seen((hline, order), None)
    elif op == "final":
        res = client.convert_to_debit(W, hline, order, check=False)
        history.ack("convert", hline, order, None, res)
        if res.code == "ok" and not res.replayed and res.debited_amount:
            pools.debit(hline, order)
        pools.seen((hline, order), None)
    elif op == "release":
        res = client.release_reservation(W, hline, order, "cancelled", check=False)
        history.ack("release", hline, order, None, res)
        pools.seen((hline, order), None)


@dataclass
class OrderFigures:
    amount: D = D(0)
    converted: D = D(0)
    ended: bool = False


def order_model(acks: list[Ack]) -> tuple[dict[str, tuple[D, D]], dict[tuple[str, str], OrderFigures]]:
    """Each line's (reserved, outstanding) and each hold's figures, as the
    acknowledged history implies, in any order of acknowledgement: a granted
    amendment moves its hold by new - previous, a shipment or conversion
    adds what it debited, and a hold ends with a release, a final conversion,
    or the shipment or cut that left nothing to hold."""
    holds: dict[tuple[str, str], OrderFigures] = collections.defaultdict(OrderFigures)
    outstanding: dict[str, D] = collections.defaultdict(D)
    for a in acks:
        r = a.result
        if r.code != "ok" or r.replayed:
            continue
        if a.op == "payment":
            outstanding[a.line] -= a.amount
            continue
        hold = holds[(a.line, a.logical)]
        if a.op == "reserve":
            hold.amount += r.amount
        elif a.op == "amend":
            hold.amount += r.amount - r.previous_amount
            hold.ended |= r.status == "converted"
        elif a.op in ("ship", "convert"):
            hold.converted += r.debited_amount
            outstanding[a.line] += r.debited_amount
            hold.ended |= r.status == "converted"
        elif a.op == "release":
            hold.ended = True
    reserved: dict[str, D] = collections.defaultdict(D)
    for (line, _), h in holds.items():
        if not h.ended:
            reserved[line] += h.amount - h.converted
    lines = set(reserved) | set(outstanding) | {a.line for a in acks}
    return {line: (reserved[line], outstanding[line]) for line in lines}, dict(holds)


def order_violations(conn: psycopg.Connection, client: CreditClient, acks: list[Ack]) -> list[str]:
    """What the acknowledgements and the database say against the rules: a
    cut refused for credit, a raise granted beyond what was available, a
    hold shipped or converted beyond its amount, totals or holds other than
    the history implies, reconcile's findings."""
    found = []
    applied: collections.Counter = collections.Counter()
    for a in acks:
        r = a.result
        if a.op == "amend" and r.code in REFUSALS and a.amount <= r.amount:
            found.append(f"cut of {a.line}/{a.logical} to {a.amount} refused with {r.code} (hold at {r.amount})")
        if a.op == "amend" and r.code == "ok" and not r.replayed and r.amount > r.previous_amount \
                and r.available < 0:
            found.append(f"raise of {a.line}/{a.logical} to {r.amount} left available {r.available}")
        if r.code == "ok" and not r.replayed:
            applied[(a.op, a.line, a.ref)] += 1
    found += [f"{op} {line}/{ref} applied {n} times" for (op, line, ref), n in applied.items() if n > 1]
    lines, holds = order_model(acks)
    cur = conn.cursor(row_factory=tuple_row)
    for name, reserved, outstanding in cur.execute(
            f"SELECT retailer_id, reserved, outstanding FROM {lines_relation(conn)} WHERE wholesaler_id = %s", [W]):
        want = lines.get(name, (D(0), D(0)))
        if (reserved, outstanding) != want:
            found.append(f"line {name}: reserved/outstanding {reserved}/{outstanding}, history implies "
                         f"{want[0]}/{want[1]}")
    for (line, order), h in holds.items():
        got = client.get_reservation(W, line, order, check=False)
        converted = got.converted_amount or D(0)
        if (got.amount, converted, got.status != "active") != (h.amount, h.converted, h.ended) \
                or converted > got.amount:
            found.append(f"hold {line}/{order}: amount {got.amount}, converted {converted}, {got.status}; history "
                         f"implies {h.amount}, {h.converted}, {'ended' if h.ended else 'active'}")
    found += [f"reconcile: {r[0]} {r[1]}/{r[2]} {r[5]}" for r in cur.execute("SELECT * FROM credit.reconcile()")]
    return found


def order_contention_report(name: str, history: History, violations: list[str]) -> str:
    codes = collections.Counter((a.op, a.result.code) for a in history.acks)
    raises = [a for a in history.acks if a.op == "amend" and a.amount > a.result.amount and a.result.code != "ok"]
    return (f"{name}: {len(history.acks)} ops acknowledged in {history.counts['seconds']} s, "
            f"{codes[('amend', 'ok')]} amendments granted and {len(raises)} raises refused, "
            f"{codes[('ship', 'ok')]} shipments, {codes[('release', 'ok')]} releases, "
            f"{codes[('ship', 'reservation_released')]} shipments refused on a released hold, "
            f"{history.counts['samples']} exposure samples, violations {len(violations)}")


def unlock_amend_reservation(conn: psycopg.Connection) -> None:
    """A deliberately broken variant, for self-checks, in this database only:
    amend_reservation checks a raise against the line read without its row
    lock, with the gap between check and write widened as a loaded machine
    would. (A raise first tries the fast path, whose UPDATE checks the room
    and takes it at once under the row's lock; the variant closes that path
    so that every raise takes the careful one, which it unlocks.)"""
    install_variant(conn, "_lock_line.sql", ("FOR NO KEY UPDATE", ""))
    install_variant(conn, "amend_reservation.sql",
                    ("AND v_amount - y.amount <= credit._fast_path_room(x)", "AND false"),
                    ("\n    INSERT INTO credit.amendment (line_id, amend_ref, order_ref, previous_amount, new_amount)",
                     "\n    PERFORM pg_sleep(0.02);\n"
                     "    INSERT INTO credit.amendment (line_id, amend_ref, order_ref, previous_amount, new_amount)"))


def unlock_shipments(conn: psycopg.Connection) -> None:
    """A deliberately broken variant, for self-checks, in this database only:
    convert_to_debit reads the hold with the line unlocked and books the
    shipment after a gap, so a release of the same hold can come between."""
    install_variant(conn, "_lock_line.sql", ("FOR NO KEY UPDATE", ""))
    install_variant(conn, "convert_to_debit.sql",
                    ("    RETURN credit._book_debit(", "    PERFORM pg_sleep(0.02);\n    RETURN credit._book_debit("))


def replay_reported_as_new(conn: psycopg.Connection) -> None:
    """A deliberately broken variant, for self-checks, in this database only:
    reserve_credit books a key once, as it should, but answers a replay of it
    as if it had booked it now (replayed = false). The book stays right; the
    callers are told an order was placed twice."""
    install_variant(conn, "reserve_credit.sql",
                    ("v_code = 'ok')::credit.reserve_result;", "false)::credit.reserve_result;"))
