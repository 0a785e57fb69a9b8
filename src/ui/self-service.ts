import type { Logger } from '../observability/logger.js';
import type { SessionService } from '../sessions/service.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { renderSupersededPage } from './pages.js';

export interface SelfServiceOptions {
  readonly sessions: SessionService;
  readonly prefix: string;
  readonly logger: Logger;
  readonly now: () => number;
}

/** What the proxy hands over for a request under the reserved prefix. */
export interface SelfServiceRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly tokenId: string | undefined;
  readonly clientIp: string;
}

export const renderRejectionPage = renderSupersededPage;

/** The self-service sessions page under the reserved prefix (see ui/pages.ts for the HTML). */
export function createSelfService(options: SelfServiceOptions): (scope: SelfServiceRequest) => void {
  return (scope) => {
    const body = JSON.stringify({ error: 'SG_ERR_NOT_FOUND', message: 'not yet', prefix: options.prefix });
    scope.res.writeHead(404, { 'content-type': 'application/json' });
    scope.res.end(body);
  };
}
