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
  /** The login, refresh or logout rule this request matched, if any (set once the body decided it). */
  rule: CompiledTokenRule | undefined;
  params: Readonly<Record<string, string>>;
  /** Rules whose form conditions are still to be read from the body, in config order. */
  readonly candidates: readonly RuleCandidate[] | undefined;
  /** Under enforcement (`protect`). */
  readonly protected: boolean;
  /** The request body, once a rule read it. */
  body: RuleBody | undefined;
  readonly token: PresentedToken | undefined;
  readonly tokenId: string | undefined;
  decision: Decision | undefined;
  /** Other tokens of the request (`token.others`) found dead: never forwarded to the app. */
  deadOthers: readonly PresentedToken[] | undefined;
}

export interface RuleCandidate {
  readonly rule: CompiledTokenRule;
  readonly params: Readonly<Record<string, string>>;
}

/** A rule route's request body: the bytes as sent (forwarded) and decoded (read). */
export interface RuleBody {
  readonly raw: Buffer;
  readonly decoded: Buffer;
}
