// Settings from the environment, read once: the same variables the compose files set.
import { readFileSync } from 'fs';
import type { PoolConfig } from 'pg';

// Read when this module loads, so before envFromFiles: these take no NAME_FILE.
export const VERSION = process.env.APP_VERSION || 'dev';
export const PORT = Number(process.env.PORT || 3000);
export const CORS_ORIGIN = process.env.CORS_ORIGIN || '';
/** After SIGTERM, in-flight requests get this long before the process exits anyway. */
export const SHUTDOWN_TIMEOUT_MS = Number(process.env.SHUTDOWN_TIMEOUT_MS || 25000);

/** PostgreSQL from the standard PG* variables; the guide's pool of 50 per instance. */
export function poolConfig(env: NodeJS.ProcessEnv = process.env): PoolConfig {
  return {
    max: Number(env.PG_POOL_MAX || 50),
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
  };
}

export function redisOptions(env: NodeJS.ProcessEnv = process.env) {
  return {
    socket: {
      host: env.REDIS_HOST || 'redis',
      port: Number(env.REDIS_PORT || 6379),
      connectTimeout: 5000,
      reconnectStrategy: (retries: number) => Math.min(retries * 100, 2000),
    },
    password: env.REDIS_PASSWORD || undefined,
  };
}

/**
 * Docker secrets (files under /run/secrets): every NAME_FILE whose NAME is unset puts
 * the file's content, less one trailing newline, into NAME. The entry points call it
 * before anything connects; pg and redis read their variables when they connect.
 */
export function envFromFiles(env: NodeJS.ProcessEnv = process.env): void {
  for (const key of Object.keys(env)) {
    const name = key.endsWith('_FILE') ? key.slice(0, -'_FILE'.length) : '';
    if (!name || env[name] !== undefined) continue;
    let text: string;
    try {
      text = readFileSync(env[key] as string, 'utf8');
    } catch (err) {
      throw new Error(`${key} names a file that cannot be read: ${(err as Error).message}`);
    }
    env[name] = text.replace(/\r?\n$/, '');
  }
}
