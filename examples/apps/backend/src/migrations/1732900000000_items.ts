// The items table. IF NOT EXISTS: a database made by an earlier example app has it.
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.sql(`CREATE TABLE IF NOT EXISTS items (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable('items');
}
