'use strict';
// Creates the schema; safe to run again (each migration is applied once).
const { postgres } = require('./clients');

const MIGRATIONS = [
  ['001_items', `CREATE TABLE items (
      id BIGSERIAL PRIMARY KEY,
      name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
      created_at TIMESTAMPTZ NOT NULL DEFAULT now())`],
];

async function main() {
  const pool = postgres();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(7261001)');
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
    for (const [name, sql] of MIGRATIONS) {
      const done = await client.query('SELECT 1 FROM schema_migrations WHERE name = $1', [name]);
      if (done.rowCount) continue;
      await client.query(sql);
      await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
      console.log(`applied ${name}`);
    }
    await client.query('COMMIT');
    console.log('migrations up to date');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
    await pool.end();
  }
}

main().catch((err) => { console.error(`migration failed: ${err.message}`); process.exit(1); });
