import { readCapped } from '../../http/body.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Answers } from '../answers.js';
import { decodeBody } from '../decode.js';
import type { RequestScope, RuleBody } from '../scope.js';

export interface RuleBodyDeps {
  readonly maxBody: number;
  readonly answers: Answers;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * The body of a rule route (read once per request, whichever step needs it first), read up to the cap
 * and decoded as the app's body parser would (`Content-Encoding` gzip, deflate, br); or the request is
 * refused (413, 415) and undefined returned.
 */
export type RuleBodyReader = (scope: RequestScope) => Promise<RuleBody | undefined>;

export function compileRuleBodyReader(deps: RuleBodyDeps): RuleBodyReader {
  const { maxBody, answers, metrics, logger } = deps;
  return async (scope) => {
    if (scope.body !== undefined) return scope.body;
    const { req, res } = scope;
    const buffered = await readCapped(req, maxBody);
    if (buffered === 'aborted') {
      logger.debug({ event: 'client_aborted', path: scope.path }, 'client went away during its upload');
      return undefined;
    }
    if (buffered === 'too_large') {
      metrics.logins.body_too_large.inc();
      answers.refuse(res, 'SG_ERR_LOGIN_BODY_TOO_LARGE', `the request body is over ${maxBody} bytes`);
      return undefined;
    }
    const encoding = req.headers['content-encoding']?.trim().toLowerCase();
    if (encoding === undefined || encoding === '' || encoding === 'identity')
      return (scope.body = { raw: buffered, decoded: buffered });
    const decoded = DECODABLE.has(encoding) ? await decodeBody(buffered, encoding, maxBody) : undefined;
    if (decoded === undefined) {
      answers.refuse(
        res,
        'SG_ERR_UNSUPPORTED_ENCODING',
        `cannot read a request body in Content-Encoding ${encoding}`,
      );
      return undefined;
    }
    return (scope.body = { raw: buffered, decoded });
  };
}

const DECODABLE = new Set(['gzip', 'x-gzip', 'deflate', 'br']);
