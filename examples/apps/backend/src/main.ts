// The example API (NestJS on Express). Listens once PostgreSQL and Redis answer; drains
// on SIGTERM (lifecycle.ts).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { AppModule } from './app.module';
import { CORS_ORIGIN, envFromFiles, PORT, VERSION } from './config';

// Until the app exists (it waits for PostgreSQL and Redis), SIGTERM simply ends the
// process: node runs as PID 1 in its container, which ignores a signal it has no handler
// for, so `docker stop` would otherwise wait out the whole grace period.
const exitBeforeStart = () => process.exit(0);

async function bootstrap(): Promise<void> {
  envFromFiles();  // first; the imports above load before it but read no secret (pg, redis: on connect)
  process.once('SIGTERM', exitBeforeStart);
  process.once('SIGINT', exitBeforeStart);
  const app = await NestFactory.create<NestExpressApplication>(AppModule, { logger: ['error', 'warn'] });
  process.off('SIGTERM', exitBeforeStart);
  process.off('SIGINT', exitBeforeStart);
  app.enableShutdownHooks();
  app.disable('x-powered-by');
  app.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('X-App-Version', VERSION);
    next();
  });
  if (CORS_ORIGIN) app.enableCors({ origin: CORS_ORIGIN });
  // Longer than nginx keeps an idle connection to it (4 s), so nginx always closes first.
  app.getHttpServer().keepAliveTimeout = 5000;
  await app.listen(PORT, '0.0.0.0');
  console.log(`backend ${VERSION} listening on ${PORT}`);
}

bootstrap().catch((err) => {
  console.error(`backend failed to start: ${err.stack || err}`);
  process.exit(1);
});
