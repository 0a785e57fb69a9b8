/**
 * `sessiongate init`: a starter configuration from a preset of config/presets/, comments kept, through
 * the built CLI.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { ROOT, runCli, tempFiles } from '../support/cli.js';

const presetText = (name: string) => readFileSync(join(ROOT, 'config/presets', `${name}.yaml`), 'utf8');
const files = tempFiles('sg-cli-init-');

describe('sessiongate init', () => {
  it('lists every preset with the first line of its comments', async () => {
    const { code, stdout } = await runCli(['init', '--list']);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(
      readdirSync(join(ROOT, 'config/presets')).filter((f) => f.endsWith('.yaml')).length,
    );
    expect(lines).toContain(
      'tomcat                 sessiongate in front of a Java servlet app with FORM login on Tomcat (10; 9 and Jakarta EE servers',
    );
    expect(lines).toContain(
      'php                    sessiongate in front of a PHP app with native sessions (session_start(), cookie PHPSESSID).',
    );
  });

  it('prints a preset unchanged, comments included, without --upstream', async () => {
    const { code, stdout } = await runCli(['init', '--preset', 'tomcat']);
    expect(code).toBe(0);
    expect(stdout).toBe(presetText('tomcat'));
  });

  it('puts --upstream in as the default of ${UPSTREAM}, and changes nothing else', async () => {
    const { code, stdout } = await runCli([
      'init',
      '--preset',
      'rails',
      '--upstream',
      'http://app.internal:3000/',
    ]);
    expect(code).toBe(0);
    expect(stdout).toContain('\nupstream: ${UPSTREAM:-http://app.internal:3000}\n');
    expect(
      stdout.replace('${UPSTREAM:-http://app.internal:3000}', '${UPSTREAM:-http://127.0.0.1:8000}'),
    ).toBe(presetText('rails'));
  });

  it('writes a configuration that loads, with the upstream given', async () => {
    const out = join(files.dir, 'loads.yaml');
    const { code } = await runCli([
      'init',
      '--preset',
      'spa-jwt',
      '--upstream',
      'http://api:8000',
      '--out',
      out,
    ]);
    expect(code).toBe(0);
    const { config } = loadConfigFile(out, { SESSIONGATE_SECRET: 'a-secret-of-sixteen+' });
    expect(config.upstream).toBe('http://api:8000');
  });

  it('writes --out FILE and says what to do next', async () => {
    const out = join(files.dir, 'new.yaml');
    const { code, stdout, stderr } = await runCli(['init', '--preset', 'php', '--out', out]);
    expect(code).toBe(0);
    expect(stdout).toBe('');
    expect(readFileSync(out, 'utf8')).toBe(presetText('php'));
    expect(stderr).toContain(`sessiongate check --config ${out} --explain`);
  });

  it('refuses to overwrite an existing file without --force (exit 1)', async () => {
    const out = files.write('existing.yaml', '# mine\n');
    const { code, stderr } = await runCli(['init', '--preset', 'php', '--out', out]);
    expect(code).toBe(1);
    expect(stderr).toContain(`${out} exists; pass --force to overwrite it`);
    expect(readFileSync(out, 'utf8')).toBe('# mine\n');
  });

  it('overwrites an existing file with --force', async () => {
    const out = files.write('forced.yaml', '# mine\n');
    const { code } = await runCli(['init', '--preset', 'django', '--out', out, '--force']);
    expect(code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(presetText('django'));
  });

  it('names the known presets for an unknown one (exit 2), writing nothing', async () => {
    const out = join(files.dir, 'unknown.yaml');
    const { code, stdout, stderr } = await runCli(['init', '--preset', 'wordpress', '--out', out]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(
      'unknown preset "wordpress"; known presets: django-signed-cookies, django, express-session, oauth2-password, php, rails, spa-jwt, tomcat',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('refuses an --upstream with a path, as the config would (exit 2)', async () => {
    const { code, stderr } = await runCli(['init', '--preset', 'php', '--upstream', 'http://app:8000/shop']);
    expect(code).toBe(2);
    expect(stderr).toContain('--upstream: expected an origin such as http://app:3000');
  });

  it('refuses options of another command (exit 2)', async () => {
    const { code, stderr } = await runCli(['init', '--preset', 'php', '--explain']);
    expect(code).toBe(2);
    expect(stderr).toContain('--explain is not an option of init');
  });

  it('is in the help, with the options of check', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const usage of [
      'sessiongate init --preset NAME',
      'sessiongate init --list',
      '--explain',
      '--connect',
    ])
      expect(stdout).toContain(usage);
  });
});
