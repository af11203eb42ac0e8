'use client';
// Calls the API through nginx from the browser: its version, the items, adding one.
import { useCallback, useEffect, useState } from 'react';
import { apiUrl, itemLabel } from '../lib/api.js';

export default function Items({ api }) {
  const [version, setVersion] = useState('…');
  const [items, setItems] = useState([]);
  const [error, setError] = useState('');

  const load = useCallback(async () => {
    const get = async (path) => {
      const res = await fetch(apiUrl(api, path));
      if (!res.ok) throw new Error(`GET ${apiUrl(api, path)}: HTTP ${res.status}`);
      return res.json();
    };
    try {
      const [v, list] = await Promise.all([get('version'), get('items')]);
      setVersion(v.version);
      setItems(list.items);
      setError('');
    } catch (err) {
      setError(err.message);
    }
  }, [api]);

  useEffect(() => { load(); }, [load]);

  async function add(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const name = new FormData(form).get('name');
    try {
      const res = await fetch(apiUrl(api, 'items'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      if (!res.ok) {
        // The API's JSON error, or nginx's own page (429, 502): not JSON.
        const detail = await res.json().then((body) => body.message, () => '');
        setError(detail || `POST ${apiUrl(api, 'items')}: HTTP ${res.status}`);
        return;
      }
    } catch (err) {
      setError(err.message);
      return;
    }
    form.reset();
    load();
  }

  return (
    <>
      <p>backend version <strong id="api-version">{version}</strong></p>
      <form id="add" onSubmit={add}>
        <input name="name" maxLength={200} required /> <button>Add item</button>
      </form>
      {error && <output role="alert">{error}</output>}
      <ul id="items">
        {items.map((item) => <li key={item.id}>{itemLabel(item)}</li>)}
      </ul>
    </>
  );
}
