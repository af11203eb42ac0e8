// Where the page's script sends its API calls, and how an item is shown: pure, so
// that `pnpm test` covers them without a browser.

/** The URL of an API path under the API's base (NEXT_PUBLIC_API_URL, e.g. "/api"). */
export function apiUrl(base, path) {
  const left = String(base || '/api').replace(/\/+$/, '');
  const right = String(path).replace(/^\/+/, '');
  return `${left}/${right}`;
}

/** One line for an item of GET /api/items. */
export function itemLabel(item) {
  const when = new Date(item.created_at);
  const stamp = Number.isNaN(when.getTime()) ? '' : ` (${when.toISOString().slice(0, 16).replace('T', ' ')})`;
  return `#${item.id} ${item.name}${stamp}`;
}
