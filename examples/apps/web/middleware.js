// A Content-Security-Policy with a fresh nonce per page: Next.js's App Router hydrates
// from inline scripts, which a policy of 'self' alone blocks. Next.js reads the nonce
// from the request's policy header and puts it on every script it renders; nginx adds
// its own policy only to responses that carry none.
import { NextResponse } from 'next/server';

// The page's script calls the API: its origin too, when NEXT_PUBLIC_API_URL names one.
const API = process.env.NEXT_PUBLIC_API_URL || '/api';
const API_ORIGIN = /^https?:\/\//.test(API) ? ` ${new URL(API).origin}` : '';

export function policy(nonce) {
  return [
    "default-src 'self'",
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    `connect-src 'self'${API_ORIGIN}`,
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
  ].join('; ');
}

export function middleware(request) {
  const nonce = btoa(crypto.randomUUID());
  const csp = policy(nonce);
  const headers = new Headers(request.headers);
  headers.set('content-security-policy', csp);
  const response = NextResponse.next({ request: { headers } });
  response.headers.set('Content-Security-Policy', csp);
  return response;
}

// Pages only: not the health route, the API (nginx sends it elsewhere) or static files.
export const config = {
  matcher: ['/((?!health|api/|_next/static|_next/image|favicon.ico|robots.txt).*)'],
};
