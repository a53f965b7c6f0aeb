// pgcredit's SQL functions, called with node-postgres: one statement per call
// on a pooled connection in autocommit, money as decimal strings both ways,
// transient failures retried with the same idempotency key, and an answer
// whose commit the server did not confirm durable reported as such.
import pg from 'pg';

const DATE_OID = 1082;

// node-postgres already hands numeric and bigint over as the server's text
// (never a JS number, so no money or id is rounded); a date would become a
// JS Date at local midnight, so it stays text as well ('2025-01-31').
const types = {
  getTypeParser: (oid, format) => (oid === DATE_OID ? (text) => text : pg.types.getTypeParser(oid, format)),
};

export function createPool(config = {}, log = defaultLog) {
  const pool = new pg.Pool({ max: 10, connectionTimeoutMillis: 10_000, ...config, types });
  // An idle connection that breaks is dropped by the pool; without a listener
  // the 'error' event would end the process.
  pool.on('error', (err) => log({ event: 'pool_error', message: err.message }));
  return pool;
}

export function defaultLog(entry) {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...entry }));
}

// Named arguments, so the SQL reads like docs/SQL-REFERENCE.md; casts, so that strings
// arrive as the types the functions take (a bad decimal is the server's 22P02).
const SQL = {
  reserve_credit: `SELECT * FROM credit.reserve_credit(wholesaler_id => $1::text, retailer_id => $2::text,
                     order_ref => $3::text, amount => $4::numeric)`,
  release_reservation: `SELECT * FROM credit.release_reservation(wholesaler_id => $1::text, retailer_id => $2::text,
                          order_ref => $3::text, reason => $4::text)`,
  convert_to_debit: `SELECT * FROM credit.convert_to_debit(wholesaler_id => $1::text, retailer_id => $2::text,
                       order_ref => $3::text, amount => $4::numeric, due_date => $5::date)`,
  get_available: `SELECT * FROM credit.get_available(wholesaler_id => $1::text, retailer_id => $2::text)`,
  amend_reservation: `SELECT * FROM credit.amend_reservation(wholesaler_id => $1::text, retailer_id => $2::text,
                        order_ref => $3::text, amount => $4::numeric, amend_ref => $5::text)`,
  // A shipment: convert_to_debit with a shipment_ref (without one it is the final conversion, deliver).
  ship: `SELECT * FROM credit.convert_to_debit(wholesaler_id => $1::text, retailer_id => $2::text,
           order_ref => $3::text, amount => $4::numeric, due_date => $5::date, shipment_ref => $6::text)`,
};

// The idempotency key among each call's arguments, for the retry log: the
// order_ref (third), unless the call has a key of its own.
const KEY_ARG = { amend_reservation: 4, ship: 5 };

// Lock timeout, deadlock, serialization failure, statement timeout or cancel,
// server shutting down or backend terminated (as the Python client decides).
const RETRYABLE = new Set(['55P03', '40P01', '40001', '57014', '57P01', '57P02', '57P03']);

export function isRetryable(err) {
  if (err instanceof pg.DatabaseError) return RETRYABLE.has(err.code) || err.code.startsWith('08');
  // Anything else node-postgres throws is a failure to reach or keep the
  // server; the call may or may not have committed, and the key makes a
  // second attempt harmless either way (it replays).
  return true;
}

/** Class 22: the server refused the input, naming the argument, and wrote nothing. */
export function isInvalidInput(err) {
  return err instanceof pg.DatabaseError && err.code.startsWith('22');
}

export const DEFAULT_RETRY = { attempts: 5, baseDelayMs: 50, maxDelayMs: 1000 };

/** The retries are spent: the caller should answer 503 and try again later. */
export class Busy extends Error {
  constructor(fn, attempts, cause) {
    super(`${fn}: gave up after ${attempts} attempts: ${cause.message}`, { cause });
    this.sqlstate = cause.code;
  }
}

/**
 * With a synchronous standby, a commit whose wait for the standby was
 * cancelled (pg_cancel_backend, a client-side cancel) is done on the primary
 * only, and the server still answers with the result row, plus a WARNING
 * notice with SQLSTATE 01000 ("canceling wait for synchronous replication
 * due to user request" on an English server). The row is not an answer: if
 * the primary is lost now, so is the call. Not retried here: the cancel was
 * someone's decision to stop waiting, and a retry would wait for the same
 * standby. The caller calls again with the same key once a server answers;
 * that call waits for the standby like the first, so its answer is durable.
 */
export class OutcomeUnknown extends Error {
  constructor(fn, key, notice) {
    super(`${fn} ${key}: outcome unknown, the commit is not confirmed durable (${notice.severity} ${notice.code}: `
      + `${notice.message}); call again with the same key once a server answers`);
    this.fn = fn;
    this.key = key;
    this.sqlstate = notice.code;
  }
}

/**
 * The notice that says a commit is not confirmed: SQLSTATE 01000, matched
 * by code, not text (servers with another lc_messages translate it, and
 * node-postgres gives only the translated severity). pgcredit's functions
 * raise no warnings of their own.
 */
export function isUnconfirmedCommit(notice) {
  return notice.code === '01000';
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One attempt on a connection of the pool, listening for its notices until the answer (commit included) is in. */
async function attemptOnce(pool, fn, args) {
  const client = await pool.connect();
  const unconfirmed = [];
  const onNotice = (notice) => {
    if (isUnconfirmedCommit(notice)) unconfirmed.push(notice);
  };
  client.on('notice', onNotice);
  let failed;
  try {
    const { rows } = await client.query(SQL[fn], args);
    return { row: rows[0], unconfirmed };
  } catch (err) {
    failed = err;
    throw err;
  } finally {
    client.off('notice', onNotice);
    client.release(failed); // as pool.query does: a connection that failed is not reused
  }
}

/**
 * Runs credit.<fn>(...args) and returns its one row; every attempt sends the
 * same arguments, so the same key. Throws OutcomeUnknown when the server's
 * answer came with the warning of an unconfirmed commit.
 */
export async function call(pool, fn, args, { retry = DEFAULT_RETRY, log = defaultLog } = {}) {
  const key = args[KEY_ARG[fn] ?? 2] ?? null;
  for (let attempt = 1; ; attempt++) {
    let answer;
    try {
      answer = await attemptOnce(pool, fn, args);
    } catch (err) {
      if (!isRetryable(err)) throw err;
      if (attempt >= retry.attempts) {
        log({ event: 'gave_up', fn, key, attempt, sqlstate: err.code ?? null, message: err.message });
        throw new Busy(fn, attempt, err);
      }
      // Full jitter: waiters that collided on one line do not collide again in step.
      const delayMs = Math.random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
      log({ event: 'retry', fn, key, attempt, sqlstate: err.code ?? null, delay_ms: Math.round(delayMs) });
      await sleep(delayMs);
      continue;
    }
    if (answer.unconfirmed.length) {
      log({ event: 'outcome_unknown', fn, key, attempt, sqlstate: answer.unconfirmed[0].code });
      throw new OutcomeUnknown(fn, key, answer.unconfirmed[0]);
    }
    return answer.row;
  }
}
