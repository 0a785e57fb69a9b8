/**
 * One error base class for sessiongate. Every error carries a stable `code` (SG_ERR_...) that appears
 * in logs and in HTTP error bodies; tests assert on the code, never on the message.
 */
export class SessiongateError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem found in the configuration, with the key path it belongs to. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

/** The configuration is invalid; `problems` lists every problem found, not just the first. */
export class ConfigError extends SessiongateError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(
      'SG_ERR_CONFIG',
      `invalid configuration:\n${problems.map((p) => `  - ${p.path || '(root)'}: ${p.message}`).join('\n')}`,
    );
    this.problems = problems;
  }
}

/** The session store could not answer (Redis unreachable, command timed out). */
export class StoreUnavailableError extends SessiongateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SG_ERR_STORE_UNAVAILABLE', message, options);
  }
}

/** A compare-and-set commit lost to a concurrent change of the same user; the caller retries. */
export class StoreConflictError extends SessiongateError {
  constructor(user: string) {
    super('SG_ERR_STORE_CONFLICT', `concurrent change of the sessions of one user (${user.length} chars)`);
  }
}

/** The upstream could not be reached or did not answer in time. */
export class UpstreamError extends SessiongateError {
  readonly status: 502 | 504;
  constructor(
    code: 'SG_ERR_UPSTREAM_CONNECT' | 'SG_ERR_UPSTREAM_TIMEOUT' | 'SG_ERR_UPSTREAM',
    status: 502 | 504,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.status = status;
  }
}

/** A request the gateway refuses before forwarding (ambiguous path, oversized login body). */
export class BadRequestError extends SessiongateError {
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(code, message);
    this.status = status;
  }
}
