/** The command line every bench passthrough takes: `--port <p> [--host <h>] --upstream <url>`. */
import { parseArgs } from 'node:util';

export interface PassthroughArgs {
  readonly port: number;
  readonly host: string;
  readonly upstream: string;
}

export function passthroughArgs(argv: readonly string[] = process.argv.slice(2)): PassthroughArgs {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      upstream: { type: 'string' },
    },
  });
  if (!values.upstream) throw new Error('--upstream is required');
  return { port: Number(values.port ?? 0), host: values.host ?? '127.0.0.1', upstream: values.upstream };
}
