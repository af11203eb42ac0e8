// Standalone output: `next build` writes a server with only the files it needs
// (.next/standalone), which the image runs with `node apps/web/server.js`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** @type {import('next').NextConfig} */
export default {
  output: 'standalone',
  outputFileTracingRoot: path.join(here, '../..'),
  poweredByHeader: false,
  // nginx compresses; Next.js need not do it twice.
  compress: false,
};
