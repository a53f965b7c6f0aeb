// pgcredit's SQL functions, called with node-postgres: one statement per call
// on a pooled connection in autocommit, money as decimal strings both ways,
// and transient failures retried with the same idempotency key.
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
};

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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs credit.<fn>(...args) and returns its one row; every attempt sends the same arguments, so the same key. */
export async function call(pool, fn, args, { retry = DEFAULT_RETRY, log = defaultLog } = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      const { rows } = await pool.query(SQL[fn], args);
      return rows[0];
    } catch (err) {
      if (!isRetryable(err)) throw err;
      const key = args[2] ?? null;
      if (attempt >= retry.attempts) {
        log({ event: 'gave_up', fn, key, attempt, sqlstate: err.code ?? null, message: err.message });
        throw new Busy(fn, attempt, err);
      }
      // Full jitter: waiters that collided on one line do not collide again in step.
      const delayMs = Math.random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
      log({ event: 'retry', fn, key, attempt, sqlstate: err.code ?? null, delay_ms: Math.round(delayMs) });
      await sleep(delayMs);
    }
  }
}
