// `node dist/migrate.js` (deploy.database.migrate_command): applies the pending
// migrations of dist/migrations with node-pg-migrate, each once, in one transaction.
// Its advisory lock makes a second run at the same moment stop with "Another migration
// is already running" (the deploy tasks never start two: they hold the stage's lock).
// Connects with the standard PG* variables (or PG*_FILE: config.envFromFiles).
import path from 'path';
import { runner } from 'node-pg-migrate';
import { envFromFiles } from './config';

async function main(): Promise<void> {
  envFromFiles();
  const applied = await runner({
    databaseUrl: { application_name: 'migrate' },
    dir: path.join(__dirname, 'migrations'),
    migrationsTable: 'pgmigrations',
    direction: 'up',
    count: Infinity,
    singleTransaction: true,
    log: (message: string) => console.log(message),
  });
  console.log(applied.length ? `applied ${applied.map((m) => m.name).join(', ')}` : 'migrations up to date');
}

main().catch((err) => {
  console.error(`migration failed: ${err.message}`);
  process.exit(1);
});
