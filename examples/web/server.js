'use strict';
// Example web front: a page that shows its version and calls the API through nginx.
// Writes nothing to disk (runs on a read-only root filesystem). Stops gracefully on SIGTERM.
const http = require('http');
const fs = require('fs');
const path = require('path');

const VERSION = process.env.APP_VERSION || 'dev';
const PORT = Number(process.env.PORT || 3000);
const API_URL = process.env.NEXT_PUBLIC_API_URL || '/api';
const SHUTDOWN_TIMEOUT_MS = Number(process.env.SHUTDOWN_TIMEOUT_MS || 25000);
const APP_JS = fs.readFileSync(path.join(__dirname, 'public', 'app.js'));

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example app ${escapeHtml(VERSION)}</title></head>
<body data-api="${escapeHtml(API_URL)}">
<h1>Example app</h1>
<p>web version <strong id="web-version">${escapeHtml(VERSION)}</strong>,
backend version <strong id="api-version">…</strong></p>
<form id="add"><input name="name" maxlength="200" required> <button>Add item</button></form>
<ul id="items"></ul>
<script src="/_next/static/app.js"></script>
</body></html>`;

let stopping = false;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/health') {
    res.writeHead(stopping ? 503 : 200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ status: stopping ? 'stopping' : 'ok', version: VERSION }));
  }
  if (url.pathname === '/_next/static/app.js') {
    res.writeHead(200, { 'Content-Type': 'application/javascript; charset=utf-8' });
    return res.end(APP_JS);
  }
  if (req.method === 'GET' && url.pathname === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'X-App-Version': VERSION });
    return res.end(PAGE);
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});
server.keepAliveTimeout = 5000;

function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: draining`);
  setTimeout(() => process.exit(1), SHUTDOWN_TIMEOUT_MS).unref();
  server.close(() => { console.log('drained, bye'); process.exit(0); });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(PORT, () => console.log(`web ${VERSION} listening on ${PORT}`));
