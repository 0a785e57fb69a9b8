/**
 * The certificate files of a TLS listener (`tls`, `admin.tls`): read and checked at startup (a problem
 * is a configuration error naming the key), then watched, so a rotated certificate (cert-manager, a
 * renewed Let's Encrypt certificate) reaches new connections without a restart. Connections already
 * open keep the context they were made with.
 */
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import { ConfigError, type ConfigProblem } from './errors.js';
import type { Logger } from './observability/logger.js';

/** The file paths of a listener's `tls` key. */
export interface TlsFilesConfig {
  readonly cert: string;
  readonly key: string;
}

/** What a listener's secure context is made of (PEM). */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Why a read failed, short: the errno code (`ENOENT`), else the message. */
function reason(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** Reads and checks the files, or the problems with them, each named by its key (`tls.cert`). */
function tryRead(files: TlsFilesConfig, key: string): TlsMaterial | ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const read = (which: 'cert' | 'key'): Buffer | undefined => {
    try {
      return readFileSync(files[which]);
    } catch (err) {
      problems.push({ path: `${key}.${which}`, message: `cannot read ${files[which]}: ${reason(err)}` });
      return undefined;
    }
  };
  const cert = read('cert');
  const pem = read('key');
  if (cert === undefined || pem === undefined) return problems;
  // Each file alone first, so the problem names the file that is wrong; then whether they belong together.
  const checks: [ConfigProblem['path'], string, Parameters<typeof createSecureContext>[0]][] = [
    [`${key}.cert`, `${files.cert} is not a usable PEM certificate`, { cert }],
    [`${key}.key`, `${files.key} is not a usable PEM private key`, { key: pem }],
    [`${key}.key`, `${files.key} is not the key of ${files.cert}`, { cert, key: pem }],
  ];
  for (const [path, what, options] of checks) {
    try {
      createSecureContext(options);
    } catch (err) {
      return [{ path, message: `${what}: ${(err as Error).message}` }];
    }
  }
  return { cert, key: pem };
}

/** The listener's certificate and key, or a ConfigError naming the key of each problem. */
export function readTlsFiles(files: TlsFilesConfig, key: string): TlsMaterial {
  const got = tryRead(files, key);
  if (Array.isArray(got)) throw new ConfigError(got);
  return got;
}

export interface CertificateWatcherOptions {
  readonly files: TlsFilesConfig;
  /** The config key, for logs (`tls`, `admin.tls`). */
  readonly key: string;
  /** What the listener serves now (read at startup). */
  readonly current: TlsMaterial;
  /** Gives the listener a new context (`tls.Server.setSecureContext`): new connections get it. */
  readonly apply: (material: TlsMaterial) => void;
  readonly logger: Logger;
  /** Milliseconds between two reads of the files, behind the directory watch. @default 30000 */
  readonly interval?: number;
}

export interface CertificateWatcher {
  /** Reads the files now (SIGHUP); applies them if they changed and are usable. */
  reload(): void;
  stop(): void;
}

/** Change events come in bursts (a file written in parts, a Kubernetes secret's symlink swap). */
const SETTLE = 100;

/**
 * Watches the directories of the files (a Kubernetes secret volume replaces its files by renaming a
 * symlink, which a watch on the file itself would miss) and reads them again every `interval` as a
 * backstop for file systems without change events. A changed pair that is not usable (the certificate
 * written, its key not yet) is logged and the served one kept; the next change is tried again.
 */
export function watchCertificates(options: CertificateWatcherOptions): CertificateWatcher {
  const { files, key, logger: log } = options;
  let served = options.current;
  let settle: NodeJS.Timeout | undefined;
  let failed: string | undefined;

  const reload = () => {
    const got = tryRead(files, key);
    if (Array.isArray(got)) {
      const message = got.map((p) => `${p.path}: ${p.message}`).join('; ');
      // Once per distinct problem: the poll would repeat it every interval.
      if (message !== failed)
        log.warn({ code: 'SG_WARN_TLS_RELOAD', key, reason: message }, 'certificate not reloaded');
      failed = message;
      return;
    }
    failed = undefined;
    if (got.cert.equals(served.cert) && got.key.equals(served.key)) return;
    try {
      options.apply(got);
    } catch (err) {
      log.warn(
        { code: 'SG_WARN_TLS_RELOAD', key, reason: (err as Error).message },
        'certificate not reloaded',
      );
      return;
    }
    served = got;
    log.info({ event: 'tls_reloaded', key, cert: files.cert }, 'certificate reloaded');
  };
  const soon = () => {
    clearTimeout(settle);
    settle = setTimeout(reload, SETTLE);
    settle.unref();
  };

  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(files.cert), dirname(files.key)])) {
    try {
      const w = watch(dir, { persistent: false }, soon);
      // A directory that goes away (an unmounted volume) leaves the poll to notice what comes back.
      w.on('error', () => w.close());
      watchers.push(w);
    } catch (err) {
      log.warn({ code: 'SG_WARN_TLS_WATCH', key, dir, reason: reason(err) }, 'cannot watch; polling only');
    }
  }
  const poll = setInterval(reload, options.interval ?? 30_000);
  poll.unref();

  return {
    reload,
    stop() {
      clearInterval(poll);
      clearTimeout(settle);
      for (const w of watchers) w.close();
    },
  };
}
