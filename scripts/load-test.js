// k6 load test with the deployment guide's targets, for users who run k6
// (https://k6.io): BASE_URL=http://127.0.0.1:8080 k6 run scripts/load-test.js
// Fails the run when p95 latency reaches 100 ms or more than 1% of requests fail.
import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';

export const options = {
  stages: [
    { duration: '30s', target: 50 },
    { duration: '1m', target: 100 },
    { duration: '30s', target: 0 },
  ],
  thresholds: {
    http_req_duration: ['p(95)<100'],
    http_req_failed: ['rate<0.01'],
  },
};

export default function () {
  const page = http.get(`${BASE}/`);
  check(page, { 'page 200': (r) => r.status === 200 });
  const items = http.get(`${BASE}/api/items`);
  check(items, { 'items 200': (r) => r.status === 200 });
  if (Math.random() < 0.1) {
    const created = http.post(`${BASE}/api/items`, JSON.stringify({ name: `k6 ${__VU}-${__ITER}` }),
      { headers: { 'Content-Type': 'application/json' } });
    check(created, { 'create 201': (r) => r.status === 201 });
  }
  sleep(1);
}
