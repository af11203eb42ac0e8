'use strict';
// Inserts example rows once (skips when items already exist).
const { postgres } = require('./clients');

async function main() {
  const pool = postgres();
  try {
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM items');
    if (rows[0].n > 0) { console.log(`seed skipped: ${rows[0].n} items exist`); return; }
    for (const name of ['first item', 'segundo item', 'третий элемент']) {
      await pool.query('INSERT INTO items (name) VALUES ($1)', [name]);
    }
    console.log('seeded 3 items');
  } finally {
    await pool.end();
  }
}

main().catch((err) => { console.error(`seed failed: ${err.message}`); process.exit(1); });
