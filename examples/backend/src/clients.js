'use strict';
// Connections to PostgreSQL and Redis, configured by the standard PG* variables
// and REDIS_HOST / REDIS_PORT / REDIS_PASSWORD.
const { Pool } = require('pg');
const { createClient } = require('redis');

function postgres() {
  const pool = new Pool({ max: Number(process.env.PG_POOL_MAX || 50), connectionTimeoutMillis: 5000 });
  // An idle connection terminated by the server (pg_terminate_backend, a restore, a
  // restart) is dropped from the pool; the next query opens a new one.
  pool.on('error', (err) => console.error(`postgres: idle connection lost: ${err.message}`));
  return pool;
}

async function redis() {
  const client = createClient({
    socket: {
      host: process.env.REDIS_HOST || 'redis',
      port: Number(process.env.REDIS_PORT || 6379),
      connectTimeout: 5000,
      reconnectStrategy: (retries) => Math.min(retries * 100, 2000),
    },
    password: process.env.REDIS_PASSWORD || undefined,
  });
  client.on('error', (err) => console.error(`redis: ${err.message}`));
  await client.connect();
  return client;
}

module.exports = { postgres, redis };
