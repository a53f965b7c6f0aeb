// pgcredit's event feed, followed with node-postgres (the project's
// OPERATIONS.md, "Events"): pages of credit.events_after after a cursor that
// the application keeps, each call a transaction of its own (the pool's
// autocommit, as events_after needs), and a pause that grows while the feed
// is idle, so that an idle follower costs the server a few calls a second.
import { defaultLog, isRetryable } from './credit.js';

const PAGE = `SELECT * FROM credit.events_after(after_event_id => $1::bigint, max_rows => $2::integer,
                wholesaler_id => $3::text)`;

/**
 * One page of the feed after `after` (an event_id, as a string: it is a bigint).
 * Each event: event_id (string), kind, wholesaler_id, retailer_id, ref, amount
 * (a decimal string or null), data (an object: its money is decimal strings
 * too, its moments ISO 8601 strings) and created_at (a Date).
 */
export async function readEvents(pool, { after = '0', maxRows = 100, wholesalerId = null } = {}) {
  const { rows } = await pool.query(PAGE, [String(after), maxRows, wholesalerId]);
  return rows;
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

/**
 * Calls onEvent(event) for every event after `after`, in event_id order, until
 * `signal` aborts; returns the event_id of the last event handled. onEvent may
 * be async: the next event waits for it. Store event.event_id with whatever
 * onEvent did (in one transaction) and pass it back as `after` on restart:
 * each event then takes effect once. A lost connection or a lock wait is
 * retried after a pause; any other error (events_pruned: the events after
 * the cursor were pruned before they were read) is thrown.
 */
export async function follow(pool, { after = '0', onEvent, signal, maxRows = 100, maxWaitMs = 500,
  wholesalerId = null, log = defaultLog }) {
  let cursor = String(after);
  let idle = 20;
  while (!signal?.aborted) {
    let page;
    try {
      page = await readEvents(pool, { after: cursor, maxRows, wholesalerId });
    } catch (err) {
      if (!isRetryable(err)) throw err;
      log({ event: 'feed_retry', after: cursor, sqlstate: err.code ?? null, message: err.message });
      await sleep(maxWaitMs, signal);
      continue;
    }
    for (const event of page) {
      await onEvent(event);
      cursor = event.event_id;
      if (signal?.aborted) return cursor;
    }
    if (page.length === maxRows) {
      idle = 20;
      continue;
    }
    const pause = page.length ? 20 : idle;
    idle = page.length ? 20 : Math.min(idle * 2, maxWaitMs);
    await sleep(Math.min(pause, maxWaitMs), signal);
  }
  return cursor;
}
