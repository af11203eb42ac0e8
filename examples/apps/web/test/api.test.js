// `pnpm test`: the page's pure helpers.
import assert from 'node:assert';
import test from 'node:test';
import { apiUrl, itemLabel } from '../lib/api.js';

test('API paths join the base with exactly one slash', () => {
  assert.strictEqual(apiUrl('/api', 'items'), '/api/items');
  assert.strictEqual(apiUrl('/api/', '/items'), '/api/items');
  assert.strictEqual(apiUrl('https://example.test/api//', 'version'), 'https://example.test/api/version');
  assert.strictEqual(apiUrl('', 'items'), '/api/items');
});

test('an item is shown with its id, name and time', () => {
  assert.strictEqual(itemLabel({ id: '7', name: 'first', created_at: '2026-11-29T10:20:30Z' }), '#7 first (2026-11-29 10:20)');
  assert.strictEqual(itemLabel({ id: 8, name: 'no time', created_at: null }), '#8 no time (1970-01-01 00:00)');
  assert.strictEqual(itemLabel({ id: 9, name: 'bad', created_at: 'not a date' }), '#9 bad');
});
