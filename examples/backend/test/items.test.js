'use strict';
// Run by `inv deploy` before building (deploy.test_command): node --test examples/backend/test
const test = require('node:test');
const assert = require('node:assert');
const { itemName } = require('../src/items');

test('item names are trimmed', () => {
  assert.strictEqual(itemName({ name: '  héllo ✓ ' }), 'héllo ✓');
});

test('empty, missing and overlong names are refused with 422', () => {
  for (const body of [{}, { name: '   ' }, { name: 42 }, null, { name: 'x'.repeat(201) }]) {
    assert.throws(() => itemName(body), (err) => err.status === 422);
  }
});
