// The code-to-status rule, without a database.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { statusFor } from '../src/server.js';

test('ok is 201 when a hold was created, 200 when replayed or not a creation', () => {
  assert.equal(statusFor('ok', { created: true, replayed: false }), 201);
  assert.equal(statusFor('ok', { created: true, replayed: true }), 200);
  assert.equal(statusFor('ok', { replayed: false }), 200);
});

test('codes naming something not found are 404', () => {
  for (const code of ['line_not_found', 'reservation_not_found', 'debit_not_found']) {
    assert.equal(statusFor(code), 404, code);
  }
});

test('every other code is a 409 refusal, including codes this service has never seen', () => {
  for (const code of ['insufficient_credit', 'line_blocked', 'overdue', 'exists_with_different_amount',
    'reservation_released', 'reservation_converted', 'reservation_expired', 'exceeds_reservation_amount',
    'a_code_added_next_year']) {
    assert.equal(statusFor(code), 409, code);
  }
});
