#!/usr/bin/env node
/** argv -> config -> gateway; signals and graceful shutdown. */
import { parseArgs } from 'node:util';
import { checkConnections } from './cli/connect.js';
import { explain } from './cli/explain.js';
import { runInit } from './cli/init.js';
import { loadConfigFile } from './config/load.js';
import { shutdownGraceOf, type Config } from './config/schema.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { createGateway, type Gateway } from './gateway.js';
import { readTlsFiles } from './tls.js';
import { checkGeoDatabase } from './geo/database.js';

const HELP = `sessiongate: keeps each user of an unmodified web app to N live sessions.

Usage:
  sessiongate [--config FILE]          run the gateway (FILE defaults to $SESSIONGATE_CONFIG)
  sessiongate check [--config FILE]    validate the configuration and exit
      --explain                        also say what each rule matches, where the token and the user
                                       are read, the protected paths, the store and the policy
      --connect                        also try the upstream (TCP, then HEAD /) and the store, each
                                       within timeouts.connect; exit 1 unless both answer
  sessiongate init --preset NAME       print a starter configuration from a preset, comments kept
      --upstream URL                   the app's origin (the default of \${UPSTREAM:-...})
      --out FILE [--force]             write FILE instead (an existing one only with --force)
  sessiongate init --list              the presets, with what each is for
  sessiongate --help                   this text

Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage.
Configuration reference: README.md ("Configuration").`;

/** The options each command takes (besides --help). */
const COMMAND_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  run: ['config'],
  check: ['config', 'explain', 'connect'],
  init: ['preset', 'upstream', 'out', 'force', 'list'],
};

/** Keys still accepted under an old name. */
function deprecations(config: Config): ConfigProblem[] {
  return config.shutdownGrace === undefined
    ? []
    : [
        {
          path: 'shutdownGrace',
          message: 'deprecated: use shutdown.grace (shutdown.grace wins when both are set)',
        },
      ];
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        explain: { type: 'boolean' },
        connect: { type: 'boolean' },
        preset: { type: 'string' },
        upstream: { type: 'string' },
        out: { type: 'string' },
        force: { type: 'boolean' },
        list: { type: 'boolean' },
      },
      allowPositionals: true,
    });
  } catch (err) {
    process.stderr.write(`sessiongate: ${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const command = parsed.positionals[0] ?? 'run';
  const allowed = COMMAND_OPTIONS[command];
  if (allowed === undefined) {
    process.stderr.write(`sessiongate: unknown command "${command}"\n\n${HELP}\n`);
    return 2;
  }
  const misplaced = Object.keys(parsed.values).filter((o) => o !== 'help' && !allowed.includes(o));
  if (misplaced.length > 0) {
    process.stderr.write(`sessiongate: --${misplaced[0]} is not an option of ${command}\n\n${HELP}\n`);
    return 2;
  }
  if (command === 'init') return runInit(parsed.values);
  const file = parsed.values.config ?? env.SESSIONGATE_CONFIG;
  if (!file) {
    process.stderr.write(`sessiongate: no configuration: pass --config FILE or set SESSIONGATE_CONFIG\n`);
    return 2;
  }
  let loaded;
  try {
    loaded = loadConfigFile(file, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sessiongate: ${file}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const warnings = [...loaded.warnings, ...deprecations(loaded.config)];
  for (const w of warnings) process.stderr.write(`sessiongate: warning: ${w.path}: ${w.message}\n`);
  const config = loaded.config;
  const invalid = (err: unknown): number => {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`sessiongate: ${file}: ${err.message}\n`);
    return 2;
  };
  if (command === 'check') {
    try {
      // The files the configuration names are part of it.
      if (config.tls) readTlsFiles(config.tls, 'tls');
      if (config.admin.tls) readTlsFiles(config.admin.tls, 'admin.tls');
      if (config.geo) checkGeoDatabase(config.geo.database);
    } catch (err) {
      return invalid(err);
    }
    process.stdout.write(`sessiongate: ${file}: configuration is valid\n`);
    if (parsed.values.explain) process.stdout.write(`\n${explain(loaded.config).join('\n')}\n`);
    if (!parsed.values.connect) return 0;
    const results = await checkConnections(loaded.config);
    process.stdout.write(`${parsed.values.explain ? '\n' : ''}${results.map((r) => r.line).join('\n')}\n`);
    return results.every((r) => r.ok) ? 0 : 1;
  }
  let gateway: Gateway;
  try {
    gateway = await createGateway(config);
  } catch (err) {
    return invalid(err);
  }
  for (const w of warnings) gateway.logger.warn({ code: 'SG_WARN_CONFIG', path: w.path }, w.message);
  await gateway.listen();
  let skipDelay: (() => void) | undefined;
  const stop = (signal: string) => {
    if (skipDelay) {
      // A second signal: the operator does not want to wait for the load balancers.
      skipDelay();
      return;
    }
    // SIGTERM comes from an orchestrator with a load balancer to drain; SIGINT from a terminal.
    const delay = signal === 'SIGINT' ? 0 : config.shutdown.delay;
    const grace = shutdownGraceOf(config);
    gateway.drain();
    gateway.logger.info({ signal, delay, grace }, 'draining: unready, still serving');
    const delayed = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      skipDelay = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    delayed
      .then(() => {
        gateway.logger.info({ grace }, 'closing the listener; in-flight requests finish');
        return gateway.close(grace);
      })
      .then(
        () => {
          gateway.logger.info('stopped');
          process.exit(0);
        },
        (err: unknown) => {
          gateway.logger.error({ err: (err as Error).message }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  // Certificates are watched; SIGHUP reads them now (after a rotation on a file system without events).
  process.on('SIGHUP', () => gateway.reloadCertificates());
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return -1; // keep running
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sessiongate: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
