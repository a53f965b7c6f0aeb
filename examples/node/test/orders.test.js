// The order service against a migrated pgcredit database, over real HTTP on
// loopback. DATABASE_URL logs in as a role that has credit_app and nothing
// else; that role also opens the lines (open_line is part of credit_app's
// API), so no second, privileged URL is needed. BROKEN_DATABASE_URL, when
// set, is a database whose reserve_credit was deliberately unlocked, for the
// self-check. tests/integration/test_node_example.py provides both.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createPool } from '../src/credit.js';
import { createService } from '../src/server.js';

const { DATABASE_URL, BROKEN_DATABASE_URL } = process.env;
const W = 'acme';
const LIMIT = '100000.00';
let lines = 0;
const newRetailer = (name) => `${name}-${++lines}`;

// Exact money in the test too: cents as BigInt.
function cents(text) {
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(text);
  assert.ok(m, `not an amount: ${text}`);
  const value = BigInt(m[2]) * 100n + BigInt((m[3] ?? '').padEnd(2, '0'));
  return m[1] ? -value : value;
}
function money(c) {
  const abs = c < 0n ? -c : c;
  return `${c < 0n ? '-' : ''}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}
// The server's numeric text keeps the scale it computed with ('0' or '0.00'): compare values.
const norm = (text) => money(cents(text));
const sum = (amounts) => amounts.reduce((a, b) => a + cents(b), 0n);

async function connect(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

async function openLine(db, retailer, limit = LIMIT) {
  const { rows } = await db.query('SELECT * FROM credit.open_line($1, $2, $3::numeric)', [W, retailer, limit]);
  assert.equal(rows[0].code, 'ok');
}

/** The service on 127.0.0.1, an ephemeral port, with its log kept for the test. */
async function startService({ url = DATABASE_URL, options, retry } = {}) {
  const events = [];
  const log = (entry) => events.push(entry);
  const pool = createPool({ connectionString: url, max: 10, options }, log);
  const server = createService({ pool, retry, log });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  const request = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: await res.json() };
  };
  return {
    events,
    get: (path) => request('GET', path),
    post: (path, body) => request('POST', path, body),
    async stop() {
      server.closeAllConnections();
      server.close();
      await pool.end();
    },
  };
}

async function until(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function lcg(seed) {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

/** n concurrent POST /orders at one line, 500.00 to 1,499.99 each: about twice the limit in all. */
async function burst(svc, retailer, n = 200) {
  const next = lcg(20240607);
  const orders = Array.from({ length: n }, (_, i) => ({
    wholesaler_id: W, retailer_id: retailer, order_ref: `burst-${i}`,
    amount: money(50_000n + BigInt(Math.floor(next() * 100_000))),
  }));
  const answers = await Promise.all(orders.map((order) =>
    svc.post('/orders', order).catch((err) => ({ status: 'no answer', body: err.message }))));
  return orders.map((order, i) => ({ order, ...answers[i] }));
}

/** What is wrong with a burst's outcome, judged from the answers and the database's totals. */
async function violations(svc, db, retailer, results) {
  const found = [];
  const of = (status) => results.filter((r) => r.status === status);
  const [accepted, refused, busy] = [of(201), of(409), of(503)];
  for (const r of results) {
    if (![201, 409, 503].includes(r.status)) found.push(`${r.order.order_ref}: answered ${r.status} ${JSON.stringify(r.body)}`);
  }
  const gaveUp = new Set(svc.events.filter((e) => e.event === 'gave_up').map((e) => e.key));
  for (const r of busy) {
    if (!gaveUp.has(r.order.order_ref)) found.push(`${r.order.order_ref}: 503 before its retries were spent`);
  }
  for (const { order, body } of refused) {
    if (body.code !== 'insufficient_credit' || cents(body.shortfall) <= 0n
        || cents(body.shortfall) !== cents(order.amount) - cents(body.available)) {
      found.push(`${order.order_ref}: refusal ${JSON.stringify(body)} for ${order.amount}`);
    }
  }
  const acceptedTotal = sum(accepted.map((r) => r.order.amount));
  if (acceptedTotal > cents(LIMIT)) found.push(`overspent: accepted ${money(acceptedTotal)} > limit ${LIMIT}`);

  const line = (await svc.get(`/lines/${W}/${retailer}`)).body;
  if (cents(line.reserved) > cents(line.credit_limit)) found.push(`overspent: reserved ${line.reserved} > limit ${line.credit_limit}`);
  if (cents(line.reserved) !== acceptedTotal) found.push(`reserved ${line.reserved} != accepted ${money(acceptedTotal)}`);
  // Available only shrank during the burst, so a refused amount exceeds what is left now.
  for (const { order } of refused) {
    if (cents(order.amount) <= cents(line.available)) found.push(`${order.order_ref}: ${order.amount} refused, ${line.available} left`);
  }
  // Every accepted order still holds its credit: a replay answers 200 with the same, active hold.
  const replays = await Promise.all(accepted.map((r) => svc.post('/orders', r.order)));
  accepted.forEach(({ order, body }, i) => {
    const again = replays[i];
    if (again.status !== 200 || again.body.replayed !== true || again.body.reservation_id !== body.reservation_id
        || again.body.status !== 'active' || cents(again.body.amount) !== cents(order.amount)) {
      found.push(`${order.order_ref}: replay answered ${again.status} ${JSON.stringify(again.body)}`);
    }
  });
  const { rows } = await db.query('SELECT check_name FROM credit.reconcile()');
  found.push(...rows.map((r) => `reconcile: ${r.check_name}`));
  return found;
}

function tally(results) {
  const counts = new Map();
  for (const { status } of results) counts.set(status, (counts.get(status) ?? 0) + 1);
  return [...counts].map(([status, n]) => `${n} x ${status}`).join(', ');
}

describe('order service', { skip: DATABASE_URL ? false : 'DATABASE_URL is not set (tests/integration/test_node_example.py sets it)' }, () => {
  let svc;
  let db;
  before(async () => {
    svc = await startService();
    db = await connect(DATABASE_URL);
  });
  after(async () => {
    await svc?.stop();
    await db?.end();
  });

  test('the service needs credit_app only: no table privileges, no other role', async () => {
    const { rows } = await db.query(`
      SELECT rolsuper, has_table_privilege('credit.line', 'SELECT') AS reads_lines,
             has_table_privilege('credit.reservation', 'INSERT') AS writes_holds,
             ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                    WHERE m.member = r.oid) AS member_of
        FROM pg_roles r WHERE r.rolname = current_user`);
    assert.deepEqual(rows[0], { rolsuper: false, reads_lines: false, writes_holds: false, member_of: ['credit_app'] });
  });

  test("place, deliver and cancel: the demo's first scenario over HTTP", async () => {
    const r = newRetailer('scenario');
    await openLine(db, r);
    const line = { wholesaler_id: W, retailer_id: r };
    const a = await svc.post('/orders', { ...line, order_ref: 'A', amount: '50000.00' });
    assert.equal(a.status, 201);
    assert.deepEqual({ ...a.body, reservation_id: 'id', shortfall: norm(a.body.shortfall) }, {
      code: 'ok', reservation_id: 'id', status: 'active', amount: '50000.00', available: '50000.00', shortfall: '0.00', replayed: false,
    });
    assert.match(a.body.reservation_id, /^\d+$/, 'bigint ids arrive as strings');
    const b = await svc.post('/orders', { ...line, order_ref: 'B', amount: '50000.00' });
    assert.equal(b.status, 201);
    assert.equal(b.body.available, '0.00');

    const short = await svc.post('/orders', { ...line, order_ref: 'C', amount: '0.01' });
    assert.equal(short.status, 409);
    assert.equal(short.body.code, 'insufficient_credit');
    assert.equal(short.body.available, '0.00');
    assert.equal(short.body.shortfall, '0.01');

    const delivered = await svc.post('/orders/A/deliver', line);
    const { rows: [{ due }] } = await db.query('SELECT (current_date + 30)::text AS due');
    assert.equal(delivered.status, 200);
    assert.equal(delivered.body.code, 'ok');
    assert.equal(delivered.body.status, 'converted');
    assert.equal(delivered.body.reservation_id, a.body.reservation_id);
    assert.equal(delivered.body.debited_amount, '50000.00');
    assert.equal(delivered.body.due_date, due, 'a date stays the server\'s text');
    const totals = await svc.get(`/lines/${W}/${r}`);
    assert.equal(totals.status, 200);
    assert.deepEqual([totals.body.reserved, totals.body.outstanding, totals.body.available].map(norm), ['50000.00', '50000.00', '0.00']);

    const cancelled = await svc.post('/orders/B/cancel', { ...line, reason: 'customer changed their mind' });
    assert.equal(cancelled.status, 200);
    assert.deepEqual([cancelled.body.status, cancelled.body.released_amount, cancelled.body.available, cancelled.body.replayed],
      ['released', '50000.00', '50000.00', false]);
    const again = await svc.post('/orders/B/cancel', line);
    assert.equal(again.status, 200);
    assert.equal(again.body.replayed, true);
    assert.equal(again.body.reservation_id, b.body.reservation_id);
    const redelivered = await svc.post('/orders/A/deliver', line);
    assert.equal(redelivered.status, 200);
    assert.equal(redelivered.body.replayed, true);
    assert.equal(redelivered.body.ledger_entry_id, delivered.body.ledger_entry_id);

    assert.deepEqual(await codeAndStatus(svc.post('/orders/B/deliver', line)), ['reservation_released', 409]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/A/cancel', line)), ['reservation_converted', 409]);
  });

  test('partial delivery debits part of the hold and releases the rest', async () => {
    const r = newRetailer('partial');
    await openLine(db, r, '1000.00');
    const line = { wholesaler_id: W, retailer_id: r };
    assert.equal((await svc.post('/orders', { ...line, order_ref: 'P', amount: '300.00' })).status, 201);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/P/deliver', { ...line, amount: '300.01' })), ['exceeds_reservation_amount', 409]);
    const part = await svc.post('/orders/P/deliver', { ...line, amount: '250.50', due_date: '2031-01-31' });
    assert.equal(part.status, 200);
    assert.deepEqual([part.body.debited_amount, part.body.released_amount, part.body.due_date, part.body.available],
      ['250.50', '49.50', '2031-01-31', '749.50']);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/P/deliver', { ...line, amount: '100.00' })), ['exists_with_different_amount', 409]);
  });

  test('an order amended, shipped in two parts with their own due dates, and its codes', async () => {
    const r = newRetailer('amend');
    await openLine(db, r, '1000.00');
    const line = { wholesaler_id: W, retailer_id: r };
    const placed = await svc.post('/orders', { ...line, order_ref: 'O-1', amount: '300.00' });
    assert.equal(placed.status, 201);
    const up = await svc.post('/orders/O-1/amend', { ...line, amount: '500.00', amend_ref: 'O-1/+200' });
    assert.equal(up.status, 200);
    assert.deepEqual([up.body.amount, up.body.previous_amount, up.body.remaining_amount, up.body.available],
      ['500.00', '300.00', '500.00', '500.00']);
    const again = await svc.post('/orders/O-1/amend', { ...line, amount: '500.00', amend_ref: 'O-1/+200' });
    assert.deepEqual([again.status, again.body.replayed, again.body.previous_amount], [200, true, '300.00']);
    const tooMuch = await svc.post('/orders/O-1/amend', { ...line, amount: '1000.01', amend_ref: 'O-1/+500.01' });
    assert.deepEqual([tooMuch.status, tooMuch.body.code, tooMuch.body.shortfall, tooMuch.body.amount],
      [409, 'insufficient_credit', '0.01', '500.00']);
    await db.query(`SELECT credit.block_line($1, $2, 'review')`, [W, r]);
    const cut = await svc.post('/orders/O-1/amend', { ...line, amount: '450.00', amend_ref: 'O-1/-50' });
    assert.deepEqual([cut.status, cut.body.amount, cut.body.available], [200, '450.00', '550.00'], 'a cut on a blocked line');
    await db.query(`SELECT credit.unblock_line($1, $2, 'ok')`, [W, r]);

    const first = await svc.post('/orders/O-1/ship', { ...line, shipment_ref: 'O-1/a', amount: '200.00', due_date: '2031-01-31' });
    assert.equal(first.status, 200);
    assert.deepEqual([first.body.status, first.body.debited_amount, first.body.remaining_amount, first.body.due_date],
      ['active', '200.00', '250.00', '2031-01-31']);
    const replay = await svc.post('/orders/O-1/ship', { ...line, shipment_ref: 'O-1/a', amount: '200.00' });
    assert.deepEqual([replay.status, replay.body.replayed, replay.body.ledger_entry_id], [200, true, first.body.ledger_entry_id]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/O-1/ship', { ...line, shipment_ref: 'O-1/a', amount: '1.00' })),
      ['exists_with_different_amount', 409]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/O-1/ship', { ...line, shipment_ref: 'O-1/b', amount: '250.01' })),
      ['exceeds_reservation_amount', 409]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/O-1/amend', { ...line, amount: '199.99', amend_ref: 'O-1/-250.01' })),
      ['below_converted_amount', 409]);
    const rest = await svc.post('/orders/O-1/ship', { ...line, shipment_ref: 'O-1/b' });
    const { rows: [{ due }] } = await db.query('SELECT (current_date + 30)::text AS due');
    assert.deepEqual([rest.status, rest.body.status, rest.body.debited_amount, norm(rest.body.remaining_amount), rest.body.due_date],
      [200, 'converted', '250.00', '0.00', due]);
    const totals = await svc.get(`/lines/${W}/${r}`);
    assert.deepEqual([totals.body.reserved, totals.body.outstanding].map(norm), ['0.00', '450.00']);

    assert.deepEqual(await codeAndStatus(svc.post('/orders/O-1/amend', { ...line, amount: '600.00', amend_ref: 'O-1/+150' })),
      ['reservation_converted', 409]);
    assert.equal((await svc.post('/orders', { ...line, order_ref: 'O-2', amount: '10.00' })).status, 201);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/O-2/amend', { ...line, amount: '500.00', amend_ref: 'O-1/+200' })),
      ['exists_with_different_terms', 409]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/none/amend', { ...line, amount: '5.00', amend_ref: 'x' })),
      ['reservation_not_found', 404]);
    const same = await svc.post('/orders/O-2/ship', { ...line, shipment_ref: 'O-2', amount: '1.00' });
    assert.deepEqual([same.status, same.body.code, same.body.sqlstate], [400, 'invalid_input', '22023']);
    assert.match(same.body.message, /shipment_ref/);
    const noRef = await svc.post('/orders/O-2/ship', { ...line, amount: '1.00' });
    assert.deepEqual([noRef.status, noRef.body.code], [400, 'invalid_input']);
    const float = await svc.post('/orders/O-2/amend', { ...line, amount: 12.5, amend_ref: 'y' });
    assert.deepEqual([float.status, float.body.code], [400, 'invalid_input']);
    const { rows } = await db.query('SELECT check_name FROM credit.reconcile()');
    assert.deepEqual(rows, []);
  });

  test('refusals: 404 for what is not found, 409 for the rest, the result row in the body', async () => {
    const r = newRetailer('refusals');
    await openLine(db, r, '1000.00');
    const line = { wholesaler_id: W, retailer_id: r };
    assert.deepEqual(await codeAndStatus(svc.get(`/lines/${W}/nobody`)), ['line_not_found', 404]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders', { ...line, retailer_id: 'nobody', order_ref: 'X', amount: '1.00' })), ['line_not_found', 404]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/none/cancel', line)), ['reservation_not_found', 404]);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/none/deliver', line)), ['reservation_not_found', 404]);

    assert.equal((await svc.post('/orders', { ...line, order_ref: 'K', amount: '10.00' })).status, 201);
    assert.deepEqual(await codeAndStatus(svc.post('/orders', { ...line, order_ref: 'K', amount: '10.01' })), ['exists_with_different_amount', 409]);

    await db.query(`SELECT credit.block_line($1, $2, 'test')`, [W, r]);
    const blocked = await svc.post('/orders', { ...line, order_ref: 'L', amount: '1.00' });
    assert.deepEqual([blocked.status, blocked.body.code], [409, 'line_blocked']);
    const replay = await svc.post('/orders', { ...line, order_ref: 'K', amount: '10.00' });
    assert.deepEqual([replay.status, replay.body.replayed], [200, true], 'a replay succeeds on a blocked line');
  });

  test('bad input is 400 with the server\'s message, and nothing is written', async () => {
    const r = newRetailer('input');
    await openLine(db, r, '1000.00');
    const line = { wholesaler_id: W, retailer_id: r };
    const bad = async (path, body, sqlstate, message) => {
      const res = await svc.post(path, body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.code, 'invalid_input');
      assert.equal(res.body.sqlstate, sqlstate);
      assert.match(res.body.message, message);
    };
    await bad('/orders', { ...line, order_ref: 'O', amount: '10.005' }, '22023', /amount/);
    await bad('/orders', { ...line, order_ref: 'O', amount: '-5.00' }, '22023', /amount/);
    await bad('/orders', { ...line, order_ref: 'O', amount: 'NaN' }, '22023', /amount/);
    await bad('/orders', { ...line, order_ref: 'O', amount: 'ten' }, '22P02', /numeric/);
    await bad('/orders', { ...line, amount: '1.00' }, '22023', /order_ref/);
    await bad('/orders', { ...line, order_ref: ' ', amount: '1.00' }, '22023', /order_ref/);
    await bad('/orders/O/deliver', { ...line, due_date: 'someday' }, '22007', /date/);
    // Refused by the service itself, before any call: no SQLSTATE.
    await bad('/orders', { ...line, order_ref: 'O', amount: 10.5 }, undefined, /decimal string/);
    await bad('/orders', { ...line, order_ref: 7, amount: '1.00' }, undefined, /order_ref must be a string/);
    await bad('/orders', '{"amount": ', undefined, /not JSON/);
    await bad('/orders', '["acme"]', undefined, /JSON object/);
    const huge = await svc.post('/orders', 'x'.repeat(1_000_000));
    assert.deepEqual([huge.status, huge.body.code], [413, 'invalid_input']);
    assert.match(huge.body.message, /body over 65536 bytes/);
    const totals = await svc.get(`/lines/${W}/${r}`);
    assert.deepEqual([totals.body.reserved, totals.body.available].map(norm), ['0.00', '1000.00']);

    assert.deepEqual(await codeAndStatus(svc.get('/nowhere')), ['no_such_route', 404]);
    const wrongMethod = await svc.get('/orders');
    assert.deepEqual([wrongMethod.status, wrongMethod.headers.get('allow')], [405, 'POST']);
  });

  test('order refs are URL-decoded from the path', async () => {
    const r = newRetailer('paths');
    await openLine(db, r, '1000.00');
    const line = { wholesaler_id: W, retailer_id: r };
    const ref = 'PO 7/2025 #3';
    assert.equal((await svc.post('/orders', { ...line, order_ref: ref, amount: '5.00' })).status, 201);
    const cancelled = await svc.post(`/orders/${encodeURIComponent(ref)}/cancel`, line);
    assert.deepEqual([cancelled.status, cancelled.body.released_amount], [200, '5.00']);
    assert.deepEqual(await codeAndStatus(svc.post('/orders/%E0%A4%A/cancel', line)), ['invalid_input', 400]);
  });

  test('200 concurrent orders at one line: never overspent, every order answered', async (t) => {
    const r = newRetailer('burst');
    await openLine(db, r);
    const results = await burst(svc, r);
    t.diagnostic(`burst of 200 orders: ${tally(results)}`);
    assert.deepEqual(await violations(svc, db, r, results), []);
    const statuses = new Set(results.map((x) => x.status));
    assert.ok(statuses.has(201) && statuses.has(409), 'demand is twice the limit: some orders fit, some do not');
    assert.ok(!statuses.has(503), 'no order ran out of retries');
  });

  test('a held line lock: the service retries 55P03 with the same key and succeeds once it is released', async () => {
    const impatient = await startService({ options: '-c credit.lock_timeout=100ms' });
    const holder = await connect(DATABASE_URL);
    try {
      const r = newRetailer('lock');
      await openLine(db, r, '1000.00');
      // An open transaction that reserved on the line holds the line's row lock.
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM credit.reserve_credit($1, $2, 'holder', 1.00)`, [W, r]);
      const pending = impatient.post('/orders', { wholesaler_id: W, retailer_id: r, order_ref: 'waits', amount: '10.00' });
      await until(() => impatient.events.some((e) => e.event === 'retry'), 'the first retry');
      await holder.query('ROLLBACK');
      const res = await pending;

      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.replayed, false, 'the timed-out attempts wrote nothing');
      const retries = impatient.events.filter((e) => e.event === 'retry');
      assert.ok(retries.length >= 1);
      for (const e of retries) assert.deepEqual([e.fn, e.key, e.sqlstate], ['reserve_credit', 'waits', '55P03']);
      const totals = await impatient.get(`/lines/${W}/${r}`);
      assert.equal(norm(totals.body.reserved), '10.00', 'one hold for the key, however many attempts');
    } finally {
      await holder.end();
      await impatient.stop();
    }
  });

  test('a lock held past every retry: 503 with Retry-After, nothing written, the same order succeeds later', async () => {
    const impatient = await startService({
      options: '-c credit.lock_timeout=100ms', retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
    });
    const holder = await connect(DATABASE_URL);
    try {
      const r = newRetailer('held');
      await openLine(db, r, '1000.00');
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM credit.reserve_credit($1, $2, 'holder', 1.00)`, [W, r]);
      const order = { wholesaler_id: W, retailer_id: r, order_ref: 'late', amount: '10.00' };
      const res = await impatient.post('/orders', order);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '1');
      assert.deepEqual([res.body.code, res.body.sqlstate], ['busy', '55P03']);
      assert.deepEqual(impatient.events.map((e) => [e.event, e.key, e.sqlstate]),
        [['retry', 'late', '55P03'], ['retry', 'late', '55P03'], ['gave_up', 'late', '55P03']]);
      await holder.query('ROLLBACK');

      assert.equal(norm((await impatient.get(`/lines/${W}/${r}`)).body.reserved), '0.00', 'nothing was written');
      const later = await impatient.post('/orders', order);
      assert.deepEqual([later.status, later.body.replayed], [201, false]);
    } finally {
      await holder.end();
      await impatient.stop();
    }
  });

  test('a deadlock (40P01) is retried with the same key, and the retry replays the hold', async () => {
    // The one deadlock reserve_credit allows (README.md): a transaction that
    // holds the line from an earlier call reserves the order_ref that the
    // service is reserving at that moment. The service waited first, so its
    // deadlock check fires first and its attempt is the one PostgreSQL fails.
    const other = await connect(DATABASE_URL);
    try {
      const r = newRetailer('deadlock');
      await openLine(db, r, '1000.00');
      await other.query('BEGIN');
      await other.query(`SELECT * FROM credit.reserve_credit($1, $2, 'earlier', 1.00)`, [W, r]);
      const pending = svc.post('/orders', { wholesaler_id: W, retailer_id: r, order_ref: 'twice', amount: '10.00' });
      await until(async () => (await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`, [other.processID])).rows[0].n === 1,
        'the service to wait for the line');
      const { rows: [theirs] } = await other.query(`SELECT * FROM credit.reserve_credit($1, $2, 'twice', 10.00)`, [W, r]);
      await other.query('COMMIT');
      const res = await pending;

      assert.equal(theirs.code, 'ok');
      assert.deepEqual([res.status, res.body.code, res.body.replayed, res.body.reservation_id], [200, 'ok', true, theirs.reservation_id]);
      assert.ok(svc.events.some((e) => e.event === 'retry' && e.key === 'twice' && e.sqlstate === '40P01'), JSON.stringify(svc.events));
      assert.equal(norm((await svc.get(`/lines/${W}/${r}`)).body.reserved), '11.00');
    } finally {
      await other.end();
    }
  });

  test('node src/server.js serves on the port it prints and stops on SIGTERM', async () => {
    const r = newRetailer('main');
    await openLine(db, r);
    const child = spawn(process.execPath, [fileURLToPath(new URL('../src/server.js', import.meta.url))], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    try {
      const [first] = await once(createInterface({ input: child.stdout }), 'line');
      const base = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(first)?.[1];
      assert.ok(base, first);
      const res = await fetch(`${base}/lines/${W}/${r}`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).available, LIMIT);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, stderr);
      assert.match(stderr, /"event":"stopped"/, 'the pool was ended after the last request');
    } finally {
      child.kill();
    }
  });
});

describe('self-check', {
  skip: DATABASE_URL && BROKEN_DATABASE_URL ? false : 'BROKEN_DATABASE_URL is not set (tests/integration/test_node_example.py sets it)',
}, () => {
  test('the same burst against an unlocked reserve_credit is caught overspending', async (t) => {
    const broken = await startService({ url: BROKEN_DATABASE_URL });
    const db = await connect(BROKEN_DATABASE_URL);
    try {
      const r = newRetailer('unlocked');
      await openLine(db, r);
      const results = await burst(broken, r);
      const found = await violations(broken, db, r, results);
      t.diagnostic(`self-check burst on an unlocked reserve_credit: ${tally(results)}; found: ${found.filter((v) => !v.startsWith('burst-')).join('; ')}`);
      assert.ok(found.some((v) => v.startsWith('overspent')), found.join('\n'));
      assert.ok(found.includes('reconcile: over_limit'), found.join('\n'));
    } finally {
      await db.end();
      await broken.stop();
    }
  });
});

async function codeAndStatus(response) {
  const { status, body } = await response;
  return [body.code, status];
}
