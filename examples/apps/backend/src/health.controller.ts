// GET /health (the readiness probe of the deploy tasks and Docker's healthcheck) and
// GET /api/health (the public one, through nginx): 200 when PostgreSQL and Redis answer.
// Only the readiness probe turns 503 while this container drains (SIGTERM): that is what
// takes it out of the routing. The public one speaks for the service, which a draining
// replica still serves until its last request: it stays 200 (a client asking through the
// proxy in that moment must not see the service as down).
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
    return this.report(res, true);
  }

  @Get('api/health')
  apiHealth(@Res({ passthrough: true }) res: Response): Promise<Health> {
    return this.report(res, false);
  }

  private async report(res: Response, readiness: boolean): Promise<Health> {
    const checks = { postgres: 'ok', redis: 'ok' };
    await Promise.all([
      this.pool.query('SELECT 1').catch((err: Error) => { checks.postgres = err.message; }),
      this.redis.ping().then(
        (pong) => { if (pong !== 'PONG') checks.redis = 'no PONG'; },
        (err: Error) => { checks.redis = err.message; },
      ),
    ]);
    const healthy = checks.postgres === 'ok' && checks.redis === 'ok';
    const status = readiness && this.lifecycle.stopping ? 'stopping' : healthy ? 'ok' : 'degraded';
    res.status(status === 'ok' ? 200 : 503);
    return { status, version: VERSION, checks };
  }
}
