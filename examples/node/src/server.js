// The order service: place (reserve), amend, ship in parts, cancel (release)
// and deliver (the final conversion) an order over HTTP. Every decision is
// the database's; this file maps requests to function calls and result codes
// to HTTP statuses.
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { Busy, DEFAULT_RETRY, OutcomeUnknown, call, createPool, defaultLog, isInvalidInput } from './credit.js';

const MAX_BODY_BYTES = 64 * 1024;

class BadRequest extends Error {
  constructor(message, status = 400) {
    super(message);
    this.status = status;
  }
}

/** The HTTP status of a result code: new refusal codes need no change here. */
export function statusFor(code, { created = false, replayed = false } = {}) {
  if (code === 'ok') return created && !replayed ? 201 : 200;
  if (code.endsWith('_not_found')) return 404;
  // Every other code is a refusal by the line's current state (insufficient_credit,
  // line_blocked, overdue, reservation_converted, exists_with_different_amount, ...).
  return 409;
}

/** The named body fields, each a string or absent (null: the server names what is missing). */
function fields(body, names) {
  return names.map((name) => {
    const value = body[name] ?? null;
    if (value !== null && typeof value !== 'string') {
      throw new BadRequest(name === 'amount'
        ? 'amount must be a decimal string such as "2500.00" (JSON numbers are floats)'
        : `${name} must be a string`);
    }
    return value;
  });
}

// [method, path pattern, (path params, body) => the call to make]
const ROUTES = [
  ['POST', /^\/orders$/, (_, body) => ({
    fn: 'reserve_credit', created: true,
    args: fields(body, ['wholesaler_id', 'retailer_id', 'order_ref', 'amount']),
  })],
  ['POST', /^\/orders\/([^/]+)\/cancel$/, ([ref], body) => {
    const [w, r, reason] = fields(body, ['wholesaler_id', 'retailer_id', 'reason']);
    return { fn: 'release_reservation', args: [w, r, ref, reason] };
  }],
  ['POST', /^\/orders\/([^/]+)\/deliver$/, ([ref], body) => {
    const [w, r, amount, dueDate] = fields(body, ['wholesaler_id', 'retailer_id', 'amount', 'due_date']);
    return { fn: 'convert_to_debit', args: [w, r, ref, amount, dueDate] };
  }],
  // Orders as they happen: the order's new total (a raise is checked like a
  // new order, a cut always goes through), and one shipment of part of it.
  ['POST', /^\/orders\/([^/]+)\/amend$/, ([ref], body) => {
    const [w, r, amount, amendRef] = fields(body, ['wholesaler_id', 'retailer_id', 'amount', 'amend_ref']);
    return { fn: 'amend_reservation', args: [w, r, ref, amount, amendRef] };
  }],
  ['POST', /^\/orders\/([^/]+)\/ship$/, ([ref], body) => {
    const [w, r, shipmentRef, amount, dueDate] = fields(body, ['wholesaler_id', 'retailer_id', 'shipment_ref', 'amount', 'due_date']);
    if (shipmentRef === null) throw new BadRequest('shipment_ref is required (POST /orders/{order_ref}/deliver is the final conversion)');
    return { fn: 'ship', args: [w, r, ref, amount, dueDate, shipmentRef] };
  }],
  ['GET', /^\/lines\/([^/]+)\/([^/]+)$/, ([w, r]) => ({ fn: 'get_available', args: [w, r] })],
];

async function readJson(req) {
  const chunks = [];
  let size = 0;
  // An oversized body is still read to its end (and dropped): leaving the loop
  // early would destroy the request, and the client would get a reset, not the answer.
  for await (const chunk of req) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  if (size > MAX_BODY_BYTES) throw new BadRequest(`body over ${MAX_BODY_BYTES} bytes`, 413);
  if (size === 0) return {};
  let body;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new BadRequest(`body is not JSON: ${err.message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('body must be a JSON object');
  return body;
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function route(method, path) {
  const allowed = [];
  for (const [m, pattern, handler] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    if (m === method) return { handler, params: match.slice(1).map(decodeURIComponent) };
    allowed.push(m);
  }
  return { allowed };
}

async function handle(req, res, { pool, retry, log }) {
  const { pathname } = new URL(req.url, 'http://service');
  let found;
  try {
    found = route(req.method, pathname);
  } catch {
    return send(res, 400, { code: 'invalid_input', message: `bad percent-encoding in ${pathname}` });
  }
  if (!found.handler) {
    return found.allowed.length
      ? send(res, 405, { code: 'method_not_allowed' }, { allow: found.allowed.join(', ') })
      : send(res, 404, { code: 'no_such_route' });
  }
  try {
    const { fn, args, created } = found.handler(found.params, req.method === 'GET' ? {} : await readJson(req));
    const row = await call(pool, fn, args, { retry, log });
    return send(res, statusFor(row.code, { created, replayed: row.replayed }), row);
  } catch (err) {
    if (err instanceof BadRequest) return send(res, err.status, { code: 'invalid_input', message: err.message });
    if (isInvalidInput(err)) return send(res, 400, { code: 'invalid_input', message: err.message, sqlstate: err.code });
    if (err instanceof Busy) {
      return send(res, 503, { code: 'busy', message: err.message, sqlstate: err.sqlstate ?? null }, { 'retry-after': '1' });
    }
    if (err instanceof OutcomeUnknown) {
      // Not an answer either way: the same request again (same order_ref) settles it.
      return send(res, 503, { code: 'outcome_unknown', message: err.message, sqlstate: err.sqlstate }, { 'retry-after': '1' });
    }
    log({ event: 'error', method: req.method, path: pathname, message: err.message, sqlstate: err.code ?? null });
    return send(res, 500, { code: 'internal_error' });
  }
}

/** An http.Server (not yet listening) answering from the given pg.Pool. */
export function createService({ pool, retry = DEFAULT_RETRY, log = defaultLog }) {
  return http.createServer((req, res) => {
    handle(req, res, { pool, retry, log }).catch((err) => {
      log({ event: 'error', message: err.message });
      res.destroy();
    });
  });
}

async function main() {
  const pool = createPool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.PGPOOL_MAX ?? 10) });
  const server = createService({ pool });
  const host = process.env.HOST ?? '127.0.0.1';
  server.listen(Number(process.env.PORT ?? 8080), host, () => {
    console.log(`listening on http://${host}:${server.address().port}`);
  });
  const stop = () => {
    server.close(() => pool.end().then(() => defaultLog({ event: 'stopped' })));
    server.closeIdleConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
