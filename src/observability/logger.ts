import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Paths redacted from every log line: anything that may hold a raw token. sessiongate itself only ever
 * logs token ids, this is the second line of defence (a header object logged by mistake).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-auth-token"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'token',
  'accessToken',
  'refreshToken',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  'password',
  '*.password',
];

export interface LoggerConfig {
  readonly level: string;
  readonly pretty: boolean;
}

/** The process logger: pino JSON to stdout, or pino-pretty for a terminal. */
export function createLogger(config: LoggerConfig, destination?: NodeJS.WritableStream): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: { service: 'sessiongate' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (config.pretty && !destination) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:standard' } },
    });
  }
  return destination ? pino(options, destination) : pino(options);
}
