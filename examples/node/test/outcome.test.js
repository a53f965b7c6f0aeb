// No false acknowledgement. UNCONFIRMED_DATABASE_URL is a database on a
// server whose synchronous standby never connects (tests/integration/test_node_example.py
// makes one): every commit waits for it, as for a standby that has stopped,
// unless the session sets synchronous_commit = local (the set-up here, and the
// retry, standing for "the standby is back"). A call cancelled in that wait is
// committed on the primary and answered with its row plus a WARNING 01000.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { OutcomeUnknown, call, createPool } from '../src/credit.js';
import { createService } from '../src/server.js';

const { UNCONFIRMED_DATABASE_URL: URL_ } = process.env;
const W = 'acme-unconfirmed';
const LOCAL = '-c synchronous_commit=local';
const quiet = () => {};

async function connect(options) {
  const client = new pg.Client({ connectionString: URL_, options });
  await client.connect();
  return client;
}

/** Cancels the backend that waits for the standby, once one does (the same role may cancel its own). */
async function cancelWhenWaiting(admin) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { rows } = await admin.query(`SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'`);
    if (rows.length) {
      await admin.query('SELECT pg_cancel_backend($1)', [rows[0].pid]);
      return rows[0].pid;
    }
    if (Date.now() > deadline) throw new Error('no call waited for the standby');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('an unconfirmed commit', { skip: URL_ ? false : 'UNCONFIRMED_DATABASE_URL is not set (tests/integration/test_node_example.py sets it)' }, () => {
  let admin;
  let pool;
  let localPool;
  before(async () => {
    admin = await connect(LOCAL);
    pool = createPool({ connectionString: URL_ }, quiet);
    localPool = createPool({ connectionString: URL_, options: LOCAL }, quiet);
    const { rows } = await admin.query(`SELECT * FROM credit.open_line($1, 'r', 1000)`, [W]);
    assert.equal(rows[0].code, 'ok');
  });
  after(async () => {
    await pool?.end();
    await localPool?.end();
    await admin?.end();
  });

  test('is OutcomeUnknown naming the function and the key; the retry with the same key replays it', async () => {
    const events = [];
    const [outcome] = await Promise.allSettled([
      call(pool, 'reserve_credit', [W, 'r', 'o1', '10.00'], { log: (e) => events.push(e) }),
      cancelWhenWaiting(admin),
    ]);
    assert.equal(outcome.status, 'rejected');
    assert.ok(outcome.reason instanceof OutcomeUnknown, String(outcome.reason));
    assert.deepEqual([outcome.reason.fn, outcome.reason.key, outcome.reason.sqlstate], ['reserve_credit', 'o1', '01000']);
    assert.match(outcome.reason.message, /reserve_credit o1: outcome unknown/);
    assert.deepEqual(events.map((e) => [e.event, e.key]), [['outcome_unknown', 'o1']], 'not retried');

    const again = await call(localPool, 'reserve_credit', [W, 'r', 'o1', '10.00'], { log: quiet });
    assert.deepEqual([again.code, again.replayed], ['ok', true]);
    const { rows } = await admin.query(`SELECT reserved FROM credit.get_available($1, 'r')`, [W]);
    assert.equal(Number(rows[0].reserved), 10, 'booked once');
  });

  test('the service answers 503 outcome_unknown, and the same order again settles it', async () => {
    const svc = createService({ pool, log: quiet });
    svc.listen(0, '127.0.0.1');
    await new Promise((resolve) => svc.once('listening', resolve));
    const url = `http://127.0.0.1:${svc.address().port}/orders`;
    const order = { wholesaler_id: W, retailer_id: 'r', order_ref: 'o2', amount: '5.00' };
    try {
      const [res] = await Promise.all([
        fetch(url, { method: 'POST', body: JSON.stringify(order) }),
        cancelWhenWaiting(admin),
      ]);
      const body = await res.json();
      assert.deepEqual([res.status, body.code, body.sqlstate, res.headers.get('retry-after')], [503, 'outcome_unknown', '01000', '1']);
    } finally {
      svc.closeAllConnections();
      svc.close();
    }
    const again = await call(localPool, 'reserve_credit', [W, 'r', 'o2', '5.00'], { log: quiet });
    assert.deepEqual([again.code, again.replayed], ['ok', true]);
  });

  test('self-check: a caller that ignores notices gets ok for the same answer', async () => {
    const [res] = await Promise.all([
      pool.query(`SELECT * FROM credit.reserve_credit($1, 'r', 'o3', 1.00)`, [W]),
      cancelWhenWaiting(admin),
    ]);
    assert.deepEqual([res.rows[0].code, res.rows[0].replayed], ['ok', false], 'the false acknowledgement');
  });
});
