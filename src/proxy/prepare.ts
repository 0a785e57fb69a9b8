import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AnsweredCode } from '../errors.js';
import { AMBIGUOUS, type RequestTokenReader } from '../tokens/request-token.js';
import type { CompiledProtect } from '../tokens/route.js';
import type { TokenIdOf } from '../tokens/token-id.js';
import { clientAddress, type TrustedProxies } from './client-address.js';
import { normalizePath } from './path.js';
import type { Route, RouteHandler, RuleCandidate, Scope } from './scope.js';

export interface PrepareDeps {
  /** Login, refresh and logout routes, in config order. */
  readonly routes: readonly Route[];
  /** The handler of every request no rule matches. */
  readonly passthrough: RouteHandler;
  readonly readToken: RequestTokenReader;
  readonly protect: CompiledProtect;
  /** Rule and protect paths compare case-sensitively (`routes.caseSensitive`). */
  readonly caseSensitive: boolean;
  readonly trustedProxies: TrustedProxies;
  readonly ambiguousPaths: 'reject' | 'pass';
  readonly tokenIdOf: TokenIdOf;
  readonly selfServicePrefix: string | undefined;
}

/** A request the gateway refuses before anything else: it cannot read it as the app would. */
export interface Refusal {
  readonly refused: AnsweredCode;
  readonly message: string;
}

/**
 * Reads a request once, as the app will: its normalised path, the route it matches, its token and
 * token id, whether it is protected. Everything later steps need is computed here, once.
 */
export type Prepare = <Res extends ServerResponse | undefined>(
  req: IncomingMessage,
  res: Res,
) => Scope<Res> | Refusal;

export function compilePrepare(deps: PrepareDeps): Prepare {
  const { routes, passthrough, readToken, protect, caseSensitive, trustedProxies, tokenIdOf } = deps;
  const prefix = deps.selfServicePrefix;
  return <Res extends ServerResponse | undefined>(req: IncomingMessage, res: Res): Scope<Res> | Refusal => {
    const url = req.url ?? '/';
    const normalized = normalizePath(url);
    let path: string;
    if (normalized.ok) path = normalized.path;
    else if (deps.ambiguousPaths === 'reject')
      return { refused: 'SG_ERR_AMBIGUOUS_PATH', message: `refused: ${normalized.reason}` };
    else path = url;
    const folded = caseSensitive ? path : path.toLowerCase();
    const method = req.method ?? 'GET';
    let route: Route | undefined;
    let params: Readonly<Record<string, string>> = NO_PARAMS;
    let candidates: RuleCandidate[] | undefined;
    for (const r of routes) {
      const m = r.rule.route.matches(method, path, folded);
      if (m === undefined) continue;
      const q = r.rule.matchQuery(url);
      if (q === 'no_match') continue;
      if (q !== 'match') return { refused: 'SG_ERR_AMBIGUOUS_REQUEST', message: `refused: ${q.ambiguous}` };
      // A rule with form conditions is decided on the body; the first rule without them ends the list.
      if (r.rule.matchForm !== undefined || candidates !== undefined) {
        (candidates ??= []).push({ route: r, params: m });
        if (r.rule.matchForm !== undefined) continue;
        break;
      }
      route = r;
      params = m;
      break;
    }
    const token = readToken(req.headers, url);
    if (token === AMBIGUOUS) return AMBIGUOUS_TOKEN;
    const isProtected = protect.covers(path, folded);
    const selfService = prefix !== undefined && path.startsWith(prefix);
    return {
      req,
      res,
      path,
      clientIp: clientAddress(
        req.socket.remoteAddress,
        req.headers['x-forwarded-for'] as string | undefined,
        trustedProxies,
      ),
      rule: route?.rule,
      handler: route?.handler ?? passthrough,
      params,
      candidates,
      protected: isProtected,
      selfService,
      body: undefined,
      token,
      // The HMAC is paid only where the token id is used (protected paths, token routes, self-service).
      tokenId:
        token !== undefined && (route !== undefined || candidates !== undefined || isProtected || selfService)
          ? tokenIdOf(token.value)
          : undefined,
      decision: undefined,
      deadOthers: undefined,
    };
  };
}

export function isRefusal<Res extends ServerResponse | undefined>(p: Scope<Res> | Refusal): p is Refusal {
  return 'refused' in p;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const AMBIGUOUS_TOKEN: Refusal = Object.freeze({
  refused: 'SG_ERR_AMBIGUOUS_TOKEN',
  message:
    'refused: a token sent twice with different values (a cookie, header or query field), or undecodable',
});
