// PostgreSQL and Redis, connected before the app listens: the providers wait (with
// backoff) until both answer, so a container is never ready without its dependencies.
import { Pool } from 'pg';
import { createClient } from 'redis';
import { poolConfig, redisOptions } from './config';

export const POSTGRES = 'POSTGRES';
export const REDIS = 'REDIS';
export type Redis = ReturnType<typeof createClient>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function retry<T>(what: string, connect: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await connect();
    } catch (err) {
      console.error(`waiting for ${what} (attempt ${attempt}): ${(err as Error).message}`);
      await sleep(Math.min(attempt * 500, 5000));
    }
  }
}

export function postgresPool(): Pool {
  const pool = new Pool(poolConfig());
  // An idle connection ended by the server (a restore, a restart) leaves the pool;
  // the next query opens a new one.
  pool.on('error', (err) => console.error(`postgres: idle connection lost: ${err.message}`));
  return pool;
}

export async function connectPostgres(): Promise<Pool> {
  const pool = postgresPool();
  await retry('PostgreSQL', () => pool.query('SELECT 1'));
  return pool;
}

export async function connectRedis(): Promise<Redis> {
  return retry('Redis', async () => {
    const client = createClient(redisOptions());
    client.on('error', (err: Error) => console.error(`redis: ${err.message}`));
    try {
      await client.connect();
    } catch (err) {
      await client.disconnect().catch(() => undefined);
      throw err;
    }
    return client;
  });
}
