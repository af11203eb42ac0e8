// `pnpm test` (deploy.test_command runs it before building): the item rule.
import assert from 'node:assert';
import test from 'node:test';
import { HttpException } from '@nestjs/common';
import { itemName } from '../src/items';

const status = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as HttpException).getStatus();
  }
  return 'no error';
};

test('item names are trimmed', () => {
  assert.strictEqual(itemName({ name: '  héllo ✓ ' }), 'héllo ✓');
});

test('empty, missing, non-text and overlong names are refused with 422', () => {
  for (const body of [{}, { name: '   ' }, { name: 42 }, null, 'x', { name: 'x'.repeat(201) }]) {
    assert.strictEqual(status(() => itemName(body)), 422, JSON.stringify(body));
  }
});

test('a name of exactly 200 characters is kept', () => {
  assert.strictEqual(itemName({ name: 'y'.repeat(200) }).length, 200);
});
