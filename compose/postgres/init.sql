-- Runs once, when the data volume is first initialised.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
