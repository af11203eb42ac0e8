// The API: /api/version, /api/items (PostgreSQL, the list cached in Redis for 5 s) and
// /api/slow (a long request, to show that a deploy lets requests in flight finish).
import { Body, Controller, Get, HttpCode, Inject, Post, Query } from '@nestjs/common';
import type { Pool } from 'pg';
import { POSTGRES, REDIS, Redis } from './clients';
import { VERSION } from './config';
import { itemName } from './items';

const CACHE_KEY = 'items:latest';

interface Item { id: string; name: string; created_at: Date }

@Controller('api')
export class ItemsController {
  constructor(@Inject(POSTGRES) private readonly pool: Pool, @Inject(REDIS) private readonly redis: Redis) {}

  @Get('version')
  version() {
    return { version: VERSION };
  }

  @Get('items')
  async list(): Promise<{ items: Item[]; cached: boolean }> {
    const hit = await this.redis.get(CACHE_KEY);
    if (hit) return { items: JSON.parse(hit), cached: true };
    const { rows } = await this.pool.query<Item>('SELECT id, name, created_at FROM items ORDER BY id DESC LIMIT 20');
    await this.redis.set(CACHE_KEY, JSON.stringify(rows), { EX: 5 });
    return { items: rows, cached: false };
  }

  @Post('items')
  @HttpCode(201)
  async add(@Body() body: unknown): Promise<Item> {
    const name = itemName(body);
    const { rows } = await this.pool.query<Item>(
      'INSERT INTO items (name) VALUES ($1) RETURNING id, name, created_at', [name]);
    await this.redis.del(CACHE_KEY);
    return rows[0];
  }

  @Get('slow')
  async slow(@Query('ms') ms?: string) {
    const wait = Math.min(Number(ms ?? 2000) || 0, 30000);
    await new Promise((resolve) => setTimeout(resolve, wait));
    return { slept_ms: wait, version: VERSION };
  }
}
