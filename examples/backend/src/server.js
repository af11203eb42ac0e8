'use strict';
// Example API: /health (checks PostgreSQL and Redis), /api/items (PostgreSQL with a
// Redis cache), /api/slow (a long request, to prove draining). Stops gracefully on
// SIGTERM: stops accepting, finishes in-flight requests, closes its pools, exits.
const http = require('http');
const { postgres, redis } = require('./clients');
const { itemName } = require('./items');

const VERSION = process.env.APP_VERSION || 'dev';
const PORT = Number(process.env.PORT || 3000);
const SHUTDOWN_TIMEOUT_MS = Number(process.env.SHUTDOWN_TIMEOUT_MS || 25000);
const CACHE_KEY = 'items:latest';
const CORS_ORIGIN = process.env.CORS_ORIGIN || '';

let pool;
let cache;
let stopping = false;

function send(res, status, body) {
  const payload = JSON.stringify(body);
  const headers = { 'Content-Type': 'application/json; charset=utf-8', 'X-App-Version': VERSION };
  if (CORS_ORIGIN) headers['Access-Control-Allow-Origin'] = CORS_ORIGIN;
  res.writeHead(status, headers);
  res.end(payload);
}

function readJson(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) { reject(Object.assign(new Error('body too large'), { status: 413 })); req.destroy(); return; }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try { resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {}); }
      catch { reject(Object.assign(new Error('body is not JSON'), { status: 400 })); }
    });
    req.on('error', reject);
  });
}

async function health() {
  const checks = {};
  try { await pool.query('SELECT 1'); checks.postgres = 'ok'; } catch (err) { checks.postgres = err.message; }
  try { checks.redis = (await cache.ping()) === 'PONG' ? 'ok' : 'no PONG'; } catch (err) { checks.redis = err.message; }
  const ok = !stopping && Object.values(checks).every((v) => v === 'ok');
  return { status: ok ? 'ok' : (stopping ? 'stopping' : 'degraded'), version: VERSION, checks };
}

async function listItems() {
  const hit = await cache.get(CACHE_KEY);
  if (hit) return { items: JSON.parse(hit), cached: true };
  const { rows } = await pool.query('SELECT id, name, created_at FROM items ORDER BY id DESC LIMIT 20');
  await cache.set(CACHE_KEY, JSON.stringify(rows), { EX: 5 });
  return { items: rows, cached: false };
}

async function addItem(req) {
  const name = itemName(await readJson(req));
  const { rows } = await pool.query('INSERT INTO items (name) VALUES ($1) RETURNING id, name, created_at', [name]);
  await cache.del(CACHE_KEY);
  return rows[0];
}

async function route(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const key = `${req.method} ${url.pathname}`;
  switch (key) {
    case 'GET /health':
    case 'GET /api/health': {
      const h = await health();
      return send(res, h.status === 'ok' ? 200 : 503, h);
    }
    case 'GET /api/version':
      return send(res, 200, { version: VERSION });
    case 'GET /api/items':
      return send(res, 200, await listItems());
    case 'POST /api/items':
      return send(res, 201, await addItem(req));
    case 'GET /api/slow': {
      const ms = Math.min(Number(url.searchParams.get('ms') || 2000), 30000);
      await new Promise((r) => setTimeout(r, ms));
      return send(res, 200, { slept_ms: ms, version: VERSION });
    }
    default:
      return send(res, 404, { error: `no route ${key}` });
  }
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => {
    const status = err.status || 500;
    if (status >= 500) console.error(`${req.method} ${req.url}: ${err.stack || err}`);
    if (!res.headersSent) send(res, status, { error: err.message });
  });
});
server.keepAliveTimeout = 5000;

async function connect() {
  for (let attempt = 1; ; attempt += 1) {
    try {
      pool = postgres();
      await pool.query('SELECT 1');
      cache = await redis();
      return;
    } catch (err) {
      console.error(`waiting for dependencies (attempt ${attempt}): ${err.message}`);
      if (pool) await pool.end().catch(() => {});
      await new Promise((r) => setTimeout(r, Math.min(attempt * 500, 5000)));
    }
  }
}

function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: draining (no new connections, finishing in-flight requests)`);
  setTimeout(() => { console.error('drain timeout, exiting'); process.exit(1); }, SHUTDOWN_TIMEOUT_MS).unref();
  server.close(async () => {
    await Promise.allSettled([pool && pool.end(), cache && cache.quit()]);
    console.log('drained, bye');
    process.exit(0);
  });
  server.closeIdleConnections();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

connect().then(() => {
  server.listen(PORT, () => console.log(`backend ${VERSION} listening on ${PORT}`));
});
