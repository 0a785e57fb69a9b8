/**
 * `geo.database` through the built CLI: a missing or corrupt file stops `check` and the gateway itself
 * with exit 2 and a message naming the key; a good file passes `check`.
 */
import { describe, expect, it } from 'vitest';
import { runCli, tempFiles } from '../support/cli.js';
import { freePort } from '../support/ports.js';
import { GEO_DB_V4 } from './addresses.js';

const files = tempFiles('sg-geo-cli-');
let written = 0;

async function config(database: string): Promise<string> {
  const [port, admin] = [await freePort(), await freePort()];
  return files.write(
    `c${++written}.yaml`,
    `listen: 127.0.0.1:${port}\nadmin: { listen: "127.0.0.1:${admin}" }\n` +
      `upstream: http://127.0.0.1:9\nsecret: a-secret-of-sixteen+\ngeo: { database: ${JSON.stringify(database)} }\n` +
      'login:\n  - match: POST /api/login\n    token: json:accessToken\n    user: json:user.id\n',
  );
}

describe('geo.database at startup', () => {
  it('passes check with a good file', async () => {
    const run = await runCli(['check', '--config', await config(GEO_DB_V4)]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });

  it.each(['check', 'start'])(
    'exits 2 from %s naming geo.database when the file is missing',
    async (command) => {
      const missing = `${files.dir}/nowhere.mmdb`;
      const file = await config(missing);
      const run = await runCli(command === 'check' ? ['check', '--config', file] : ['run', '--config', file]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`geo.database: cannot read ${missing}: ENOENT`);
    },
  );

  it('exits 2 naming geo.database when the file is corrupt', async () => {
    const corrupt = files.write('corrupt.mmdb', 'not a database '.repeat(200));
    const run = await runCli(['run', '--config', await config(corrupt)]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`geo.database: ${corrupt} is not a MaxMind database`);
  });
});
