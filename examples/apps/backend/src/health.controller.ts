// GET /health (the readiness probe of the deploy tasks and Docker's healthcheck) and
// GET /api/health (the same through nginx): 200 when PostgreSQL and Redis answer.
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { Pool } from 'pg';
import { POSTGRES, REDIS, Redis } from './clients';
import { VERSION } from './config';
import { Lifecycle } from './lifecycle';

export interface Health {
  status: 'ok' | 'degraded' | 'stopping';
  version: string;
  checks: { postgres: string; redis: string };
}

@Controller()
export class HealthController {
  constructor(
    @Inject(POSTGRES) private readonly pool: Pool,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly lifecycle: Lifecycle,
  ) {}

  @Get('health')
  health(@Res({ passthrough: true }) res: Response): Promise<Health> {
    return this.report(res);
  }

  @Get('api/health')
  apiHealth(@Res({ passthrough: true }) res: Response): Promise<Health> {
    return this.report(res);
  }

  private async report(res: Response): Promise<Health> {
    const checks = { postgres: 'ok', redis: 'ok' };
    await Promise.all([
      this.pool.query('SELECT 1').catch((err: Error) => { checks.postgres = err.message; }),
      this.redis.ping().then(
        (pong) => { if (pong !== 'PONG') checks.redis = 'no PONG'; },
        (err: Error) => { checks.redis = err.message; },
      ),
    ]);
    const healthy = checks.postgres === 'ok' && checks.redis === 'ok';
    const status = this.lifecycle.stopping ? 'stopping' : healthy ? 'ok' : 'degraded';
    res.status(status === 'ok' ? 200 : 503);
    return { status, version: VERSION, checks };
  }
}
