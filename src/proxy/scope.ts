import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TokenCheck } from '../sessions/service.js';
import type { CompiledTokenRule } from '../tokens/exchange.js';
import type { PresentedToken } from '../tokens/request-token.js';
import type { RouteKind } from './verdict.js';

/**
 * Everything known about one request, in one typed object (oauth2-proxy's RequestScope). `Res` is the
 * response for an HTTP request and `undefined` for an upgrade (answered on its socket).
 */
export interface Scope<Res extends ServerResponse | undefined> {
  readonly req: IncomingMessage;
  readonly res: Res;
  /** The normalised path rules match against. */
  readonly path: string;
  readonly clientIp: string;
  /** The login, refresh or logout rule this request matched, if any (set once the body decided it). */
  rule: CompiledTokenRule | undefined;
  /** What is done with the request once it passes its check: the rule's handler, or passthrough. */
  handler: RouteHandler;
  params: Readonly<Record<string, string>>;
  /** Rules whose form conditions are still to be read from the body, in config order. */
  readonly candidates: readonly RuleCandidate[] | undefined;
  /** Under enforcement (`protect`). */
  readonly protected: boolean;
  /** Under the self-service prefix: served by the gateway itself. */
  readonly selfService: boolean;
  /** The request body, once a rule read it. */
  body: RuleBody | undefined;
  /**
   * The token the request is judged by: the one read from it, or (when several were presented and
   * only another was found dead) that dead one.
   */
  token: PresentedToken | undefined;
  readonly tokenId: string | undefined;
  decision: TokenCheck | undefined;
  /** Other tokens of the request (`token.others`) found dead: never forwarded to the app. */
  deadOthers: readonly PresentedToken[] | undefined;
}

export type RequestScope = Scope<ServerResponse>;
export type UpgradeScope = Scope<undefined>;

/** What is done with a request of one route, built once at startup from its compiled rule. */
export interface RouteHandler {
  readonly kind: RouteKind;
  /** The request passed its check (or needed none): forward it, tapping what the route must see. */
  handle(scope: RequestScope): void;
}

/** A rule and its handler: what a request matching the rule's route is given to. */
export interface Route {
  readonly rule: CompiledTokenRule;
  readonly handler: RouteHandler;
}

export interface RuleCandidate {
  readonly route: Route;
  readonly params: Readonly<Record<string, string>>;
}

/** A rule route's request body: the bytes as sent (forwarded) and decoded (read). */
export interface RuleBody {
  readonly raw: Buffer;
  readonly decoded: Buffer;
}
