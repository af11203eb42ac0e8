// Graceful shutdown (app.enableShutdownHooks()): on SIGTERM /health turns 503, the
// server stops accepting, idle keep-alive connections are closed while in-flight
// requests finish, then the pools close and the process exits.
import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server } from 'http';
import type { Pool } from 'pg';
import { POSTGRES, REDIS, Redis } from './clients';
import { SHUTDOWN_TIMEOUT_MS } from './config';

@Injectable()
export class Lifecycle implements BeforeApplicationShutdown, OnApplicationShutdown {
  stopping = false;

  constructor(
    private readonly adapter: HttpAdapterHost,
    @Inject(POSTGRES) private readonly pool: Pool,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  beforeApplicationShutdown(signal?: string): void {
    this.stopping = true;
    console.log(`${signal ?? 'shutdown'}: draining (no new connections, finishing in-flight requests)`);
    setTimeout(() => {
      console.error('drain timeout, exiting');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    // The server closes once every connection is gone; a kept-alive idle one would hold
    // it until its timeout, so idle ones are closed as they turn idle.
    const server: Server = this.adapter.httpAdapter.getHttpServer();
    setInterval(() => server.closeIdleConnections(), 100).unref();
  }

  async onApplicationShutdown(): Promise<void> {
    // disconnect, not quit: quit waits for a reply that never comes while Redis is away.
    await Promise.allSettled([this.pool.end(), this.redis.disconnect()]);
    console.log('drained, bye');
  }
}
