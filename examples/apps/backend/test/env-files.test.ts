import assert from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { envFromFiles } from '../src/config';

const dir = mkdtempSync(path.join(tmpdir(), 'env-files-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const secret = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};

test('NAME_FILE puts the file into NAME, less one trailing newline', () => {
  const env: NodeJS.ProcessEnv = {
    PGPASSWORD_FILE: secret('pg', 'pg pass\n\n'),
    REDIS_PASSWORD_FILE: secret('redis', ' r3d!s\r\n'),
    JWT_SECRET_FILE: secret('jwt', 'no newline'),
  };
  envFromFiles(env);
  assert.deepStrictEqual([env.PGPASSWORD, env.REDIS_PASSWORD, env.JWT_SECRET], ['pg pass\n', ' r3d!s', 'no newline']);
});

test('a NAME already set wins, even empty, and its file is not read', () => {
  const env: NodeJS.ProcessEnv = { PGPASSWORD: 'from env', PGPASSWORD_FILE: path.join(dir, 'missing'), JWT_SECRET: '', JWT_SECRET_FILE: secret('jwt2', 'x') };
  envFromFiles(env);
  assert.deepStrictEqual([env.PGPASSWORD, env.JWT_SECRET], ['from env', '']);
});

test('an unreadable file stops with the variable and the reason', () => {
  const missing = path.join(dir, 'missing');
  assert.throws(() => envFromFiles({ PGPASSWORD_FILE: missing }), (err: Error) =>
    err.message.startsWith('PGPASSWORD_FILE names a file that cannot be read: ENOENT') && err.message.includes(missing));
  assert.throws(() => envFromFiles({ REDIS_PASSWORD_FILE: dir }), /REDIS_PASSWORD_FILE names a file that cannot be read: EISDIR/);
});

test('other variables, and other *_FILE variables, are left alone', () => {
  const env: NodeJS.ProcessEnv = { _FILE: '/nonexistent', TF_CLI_CONFIG_FILE: '/nonexistent', PROFILE: 'x', PORT: '3000' };
  envFromFiles(env);
  assert.deepStrictEqual(env, { _FILE: '/nonexistent', TF_CLI_CONFIG_FILE: '/nonexistent', PROFILE: 'x', PORT: '3000' });
});
