// `node dist/seed.js` (deploy.database.seed_command): example rows, once (skipped when
// items already exist).
import { postgresPool } from './clients';
import { envFromFiles } from './config';

const NAMES = ['first item', 'segundo item', 'третий элемент'];

async function main(): Promise<void> {
  envFromFiles();
  const pool = postgresPool();
  try {
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM items');
    if (rows[0].n > 0) {
      console.log(`seed skipped: ${rows[0].n} items exist`);
      return;
    }
    await pool.query('INSERT INTO items (name) SELECT unnest($1::text[])', [NAMES]);
    console.log(`seeded ${NAMES.length} items`);
  } finally {
    await pool.end();
  }
}

main().catch((err) => {
  console.error(`seed failed: ${err.message}`);
  process.exit(1);
});
