/**
 * The one handle every app launcher returns, whether the app is a process (apps.ts `launch`) or an
 * in-process server (upstreams.ts `listenApp`).
 */
export interface RunningApp {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** Stops the app and resolves once it is gone. Safe to call twice. */
  close(): Promise<void>;
}
