import assert from 'node:assert';
import test from 'node:test';
import { poolConfig, redisOptions } from '../src/config';

test('the pool is the guide\'s 50 connections unless PG_POOL_MAX says otherwise', () => {
  assert.strictEqual(poolConfig({}).max, 50);
  assert.strictEqual(poolConfig({ PG_POOL_MAX: '20' }).max, 20);
});

test('redis reads its host, port and password from the environment', () => {
  const options = redisOptions({ REDIS_HOST: 'cache', REDIS_PORT: '6380', REDIS_PASSWORD: 's3cret' });
  assert.deepStrictEqual([options.socket.host, options.socket.port, options.password], ['cache', 6380, 's3cret']);
  assert.strictEqual(redisOptions({}).password, undefined);
});
