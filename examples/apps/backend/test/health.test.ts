// The two health endpoints while the container drains: readiness (/health) turns 503,
// the public one (/api/health) still speaks for the service.
import assert from 'node:assert';
import test from 'node:test';
import type { Response } from 'express';
import type { Pool } from 'pg';
import type { Redis } from '../src/clients';
import { HealthController } from '../src/health.controller';
import type { Lifecycle } from '../src/lifecycle';

function controller(stopping: boolean, postgresUp = true) {
  const pool = { query: async () => { if (!postgresUp) throw new Error('connection refused'); } } as unknown as Pool;
  const redis = { ping: async () => 'PONG' } as unknown as Redis;
  return new HealthController(pool, redis, { stopping } as Lifecycle);
}

function response() {
  const res = { code: 0, status(code: number) { this.code = code; return this; } };
  return res as typeof res & Response;
}

test('a draining container fails readiness but answers the public health as ok', async () => {
  const c = controller(true);
  const ready = response();
  assert.strictEqual((await c.health(ready)).status, 'stopping');
  assert.strictEqual(ready.code, 503);
  const pub = response();
  assert.strictEqual((await c.apiHealth(pub)).status, 'ok');
  assert.strictEqual(pub.code, 200);
});

test('a lost dependency fails both', async () => {
  const c = controller(false, false);
  for (const call of [c.health.bind(c), c.apiHealth.bind(c)]) {
    const res = response();
    const body = await call(res);
    assert.strictEqual(body.status, 'degraded');
    assert.strictEqual(body.checks.postgres, 'connection refused');
    assert.strictEqual(res.code, 503);
  }
});
