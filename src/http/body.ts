import type { IncomingMessage } from 'node:http';

/** Why a body could not be read: over the cap, or the client went away mid-upload. */
export type BodyProblem = 'too_large' | 'aborted';

/**
 * Reads a request body of at most `max` bytes: the one capped reader of the gateway (rule routes,
 * self-service actions). Past the cap the rest is read and dropped, so an answer reaches a client
 * still sending; a client that goes away mid-upload is the client's doing, not a gateway failure.
 */
export function readCapped(req: IncomingMessage, max: number): Promise<Buffer | BodyProblem> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) {
    req.resume();
    return Promise.resolve('too_large');
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > max) {
        req.off('data', onData);
        req.resume();
        resolve('too_large');
      }
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', () => resolve('aborted'));
    req.on('close', () => {
      if (!req.complete) resolve('aborted');
    });
  });
}
