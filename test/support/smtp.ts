/**
 * A real SMTP server for the e-mail tests (the `smtp-server` package, plain SMTP on 127.0.0.1), whose
 * messages are parsed with `mailparser`; and a "silent" server that accepts connections and never
 * greets (an SMTP host that hangs). Both are closed by the test's cleanup.
 */
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { onTestFinished } from 'vitest';

export interface ReceivedMail {
  /** The envelope's recipients (RCPT TO). */
  readonly rcptTo: string[];
  readonly mail: ParsedMail;
}

export interface TestSmtp {
  readonly port: number;
  /** Users that signed in (with `auth`). */
  readonly logins: string[];
  readonly received: ReceivedMail[];
  /** Resolves when `n` messages have arrived in all (at once if they have). */
  arrived(n: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

/** Starts an SMTP server on `port` (0: any free one); with `auth`, it takes only that user (over plain SMTP). */
export async function startSmtp(
  port = 0,
  auth?: { readonly user: string; readonly password: string },
  /** TLS from the first byte (smtps://) with this key and certificate. */
  tls?: { readonly key: string; readonly cert: string },
): Promise<TestSmtp> {
  const received: ReceivedMail[] = [];
  const logins: string[] = [];
  const events = new EventEmitter();
  const server = new SMTPServer({
    ...(tls !== undefined ? { secure: true, key: tls.key, cert: tls.cert } : {}),
    authOptional: auth === undefined,
    allowInsecureAuth: true,
    disabledCommands: auth === undefined ? ['STARTTLS', 'AUTH'] : ['STARTTLS'],
    logger: false,
    onAuth(a, _session, callback) {
      if (auth !== undefined && a.username === auth.user && a.password === auth.password) {
        logins.push(a.username);
        return callback(null, { user: a.username });
      }
      callback(new Error('bad credentials'));
    },
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((mail) => {
          received.push({ rcptTo: session.envelope.rcptTo.map((r) => r.address), mail });
          events.emit('mail');
          callback();
        })
        .catch((err: Error) => callback(err));
    },
  });
  server.listen(port, '127.0.0.1');
  await once(server.server, 'listening');
  const actual = (server.server.address() as net.AddressInfo).port;
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= new Promise<void>((resolve) => server.close(() => resolve())));
  onTestFinished(close);
  return {
    port: actual,
    logins,
    received,
    async arrived(n) {
      while (received.length < n) await once(events, 'mail');
      return received;
    },
    close,
  };
}

export interface SilentServer {
  /** Sockets accepted and still open. */
  readonly open: Set<net.Socket>;
  /** Resolves at the first accepted connection (at once if there is one). */
  connected(): Promise<void>;
  /** Closes the listener and every socket. */
  close(): Promise<void>;
}

/** A TCP server on `port` that accepts and says nothing: an SMTP client waits for a greeting. */
export async function startSilentServer(port: number): Promise<SilentServer> {
  const open = new Set<net.Socket>();
  const events = new EventEmitter();
  const server = net.createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    events.emit('connection');
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= new Promise<void>((resolve) => {
      for (const s of open) s.destroy();
      server.close(() => resolve());
    }));
  onTestFinished(close);
  return {
    open,
    async connected() {
      if (open.size === 0) await once(events, 'connection');
    },
    close,
  };
}
