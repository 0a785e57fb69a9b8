/**
 * `sessiongate init`: a starter configuration copied from a preset of `config/presets/`. The file's
 * text is copied, not parsed and re-serialised, so its comments (what to change, and why) survive.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../config/schema.js';

/** Where the shipped presets are: `config/presets/` beside `dist/` (package.json "files", the image). */
export const PRESETS_DIR = fileURLToPath(new URL('../../../config/presets/', import.meta.url));

export interface Preset {
  readonly name: string;
  /** The first comment line of the file. */
  readonly description: string;
}

export function listPresets(dir = PRESETS_DIR): Preset[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => {
      const first = readFileSync(join(dir, f), 'utf8')
        .split('\n')
        .find((l) => l.startsWith('#'));
      return { name: f.slice(0, -'.yaml'.length), description: (first ?? '#').replace(/^#\s?/, '').trim() };
    });
}

/** `name  description` lines, names padded to one column. */
export function formatPresetList(presets: readonly Preset[]): string {
  const width = Math.max(...presets.map((p) => p.name.length));
  return presets.map((p) => `${p.name.padEnd(width)}  ${p.description}`).join('\n');
}

export type InitResult =
  { readonly ok: true; readonly text: string } | { readonly ok: false; readonly message: string };

/**
 * The preset's text with the upstream substituted: the default of `${UPSTREAM:-...}` (so the
 * environment variable still wins, as in the preset), or the whole value of an `upstream:` line
 * written without one. The URL is validated as the config's `upstream` is, and its normalised origin
 * written, so it cannot carry a `}` or a YAML comment into the file.
 */
export function renderPreset(name: string, upstream: string | undefined, dir = PRESETS_DIR): InitResult {
  const presets = listPresets(dir);
  if (!presets.some((p) => p.name === name))
    return {
      ok: false,
      message: `unknown preset "${name}"; known presets: ${presets.map((p) => p.name).join(', ')}`,
    };
  const text = readFileSync(join(dir, `${name}.yaml`), 'utf8');
  if (upstream === undefined) return { ok: true, text };
  const parsed = configSchema.shape.upstream.safeParse(upstream);
  if (!parsed.success)
    return { ok: false, message: `--upstream: ${parsed.error.issues.map((i) => i.message).join('; ')}` };
  const origin = parsed.data;
  const line = /^upstream:[^\n]*$/m;
  if (!line.test(text)) return { ok: false, message: `preset "${name}" has no top-level upstream: line` };
  return {
    ok: true,
    text: text.replace(line, (l) =>
      /\$\{UPSTREAM:-[^}]*\}/.test(l)
        ? l.replace(/\$\{UPSTREAM:-[^}]*\}/, `\${UPSTREAM:-${origin}}`)
        : `upstream: ${origin}`,
    ),
  };
}

/**
 * Writes the text to `file`; refuses an existing file unless `force`. `wx` makes the refusal atomic:
 * a file created between a check and the write is not overwritten either.
 */
export function writeNewFile(file: string, text: string, force: boolean): InitResult {
  try {
    writeFileSync(file, text, { flag: force ? 'w' : 'wx' });
    return { ok: true, text };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return { ok: false, message: `${file} exists; pass --force to overwrite it` };
    return { ok: false, message: `${file}: ${(err as Error).message}` };
  }
}

export interface InitOptions {
  readonly preset?: string | undefined;
  readonly upstream?: string | undefined;
  readonly out?: string | undefined;
  readonly force?: boolean | undefined;
  readonly list?: boolean | undefined;
}

/** `sessiongate init`: the exit code (0 written, 1 not written, 2 usage). */
export function runInit(options: InitOptions, presetsDir = PRESETS_DIR): number {
  if (options.list) {
    process.stdout.write(`${formatPresetList(listPresets(presetsDir))}\n`);
    return 0;
  }
  if (options.preset === undefined) {
    const known = listPresets(presetsDir).map((p) => p.name);
    process.stderr.write(
      `sessiongate: init needs --preset NAME, one of: ${known.join(', ')} (see init --list)\n`,
    );
    return 2;
  }
  const rendered = renderPreset(options.preset, options.upstream, presetsDir);
  if (!rendered.ok) {
    process.stderr.write(`sessiongate: ${rendered.message}\n`);
    return 2;
  }
  if (options.out === undefined) {
    process.stdout.write(rendered.text);
    return 0;
  }
  const written = writeNewFile(options.out, rendered.text, options.force ?? false);
  if (!written.ok) {
    process.stderr.write(`sessiongate: ${written.message}\n`);
    return 1;
  }
  process.stderr.write(
    `sessiongate: wrote ${options.out} from the ${options.preset} preset; set SESSIONGATE_SECRET, then sessiongate check --config ${options.out} --explain\n`,
  );
  return 0;
}
