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

/** The variables that may come from a file (NAME_FILE): the secrets this app reads. */
export const FILE_VARIABLES = ['PGPASSWORD', 'PGUSER', 'PGDATABASE', 'REDIS_PASSWORD', 'JWT_SECRET'];

/**
 * Docker secrets (files under /run/secrets): for each of FILE_VARIABLES whose NAME is
 * unset, NAME_FILE puts the file's content, less one trailing newline, into NAME (other
 * *_FILE variables of the environment are not ours to read). The entry points call it
 * before anything connects; pg and redis read their variables when they connect.
 */
export function envFromFiles(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of FILE_VARIABLES) {
    const key = `${name}_FILE`;
    if (env[key] === undefined || env[name] !== undefined) continue;
    let text: string;
    try {
      text = readFileSync(env[key] as string, 'utf8');
    } catch (err) {
      throw new Error(`${key} names a file that cannot be read: ${(err as Error).message}`);
    }
    env[name] = text.replace(/\r?\n$/, '');
  }
}
