import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from '../cache/decision-cache.js';
import type { CompiledTokenRule } from '../tokens/exchange.js';
import type { PresentedToken } from '../tokens/request-token.js';

/** Everything known about one request, in one typed object (oauth2-proxy's RequestScope). */
export interface RequestScope {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The normalised path rules match against. */
  readonly path: string;
  readonly clientIp: string;
  /** The login, refresh or logout rule this request matched, if any. */
  readonly rule: CompiledTokenRule | undefined;
  readonly params: Readonly<Record<string, string>>;
  readonly token: PresentedToken | undefined;
  readonly tokenId: string | undefined;
  decision: Decision | undefined;
}
