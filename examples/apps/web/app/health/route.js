// GET /health: the readiness probe of the deploy tasks and Docker's healthcheck.
export const dynamic = 'force-dynamic';

export function GET() {
  return Response.json({ status: 'ok', version: process.env.APP_VERSION || 'dev' });
}
