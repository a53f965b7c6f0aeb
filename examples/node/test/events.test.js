// The event feed, followed with src/events.js as the service's role
// (credit_app alone) against the migrated database that
// tests/test_node_example.py provides.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createPool } from '../src/credit.js';
import { follow, readEvents } from '../src/events.js';

const { DATABASE_URL } = process.env;
const W = 'feed-test';

describe('event feed', { skip: DATABASE_URL ? false : 'DATABASE_URL is not set (tests/test_node_example.py sets it)' }, () => {
  let pool;
  let db;
  before(async () => {
    pool = createPool({ connectionString: DATABASE_URL, max: 4 }, () => {});
    db = new pg.Client({ connectionString: DATABASE_URL });
    await db.connect();
  });
  after(async () => {
    await pool?.end();
    await db?.end();
  });

  test('a follower gets every event of its wholesaler in order, and waits for the next', async () => {
    const q = (sql, args) => db.query(sql, args);
    await q("SELECT * FROM credit.open_line($1, 'r1', 100.00)", [W]);
    await q("SELECT * FROM credit.reserve_credit($1, 'r1', 'soon', 30.00, interval '50 milliseconds')", [W]);
    await q("SELECT * FROM credit.reserve_credit($1, 'r1', 'kept', 12.50)", [W]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await q('SELECT credit.expire_reservations()');

    const seen = [];
    const abort = new AbortController();
    const done = follow(pool, {
      wholesalerId: W, signal: abort.signal, maxRows: 2, maxWaitMs: 50,
      onEvent: async (event) => {
        seen.push(event);
        if (event.kind === 'payment_recorded') abort.abort();
      },
    });
    // Paid while the follower waits: it gets the payment when it is readable.
    setTimeout(() => q("SELECT * FROM credit.record_payment($1, 'r1', 'pay-1', 5.00)", [W]), 300);
    const last = await done;

    assert.deepEqual(seen.map((e) => [e.kind, e.ref, e.amount]), [
      ['line_opened', null, '100.00'],
      ['hold_reserved', 'soon', '30.00'],
      ['hold_reserved', 'kept', '12.50'],
      ['hold_expired', 'soon', '30.00'],
      ['payment_recorded', 'pay-1', '5.00'],
    ]);
    const ids = seen.map((e) => BigInt(e.event_id));
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'event_ids ascend');
    assert.equal(last, seen.at(-1).event_id, 'the cursor to keep');
    assert.ok(seen.every((e) => e.wholesaler_id === W && e.retailer_id === 'r1'));
    // Money stays a decimal string inside data too: never a float.
    assert.deepEqual(seen.map((e) => e.data.available), ['100.00', '70.00', '57.50', '87.50', '92.50']);
    assert.equal(seen[3].data.effective_at, seen[1].data.expires_at, 'expired at its expiry, written by the sweep');
    assert.ok(seen[3].created_at instanceof Date);
    assert.deepEqual(seen[4].data.settlements, []);

    // Nothing after the cursor.
    assert.deepEqual(await readEvents(pool, { after: last, wholesalerId: W }), []);
  });
});
