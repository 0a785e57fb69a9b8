/**
 * The one polling helper: for conditions no event announces (a process's output, readiness over HTTP,
 * a line in a log). Prefer waiting on an event where there is one.
 */

/**
 * Polls `check` until it returns a truthy value (returned) or `timeout` ms pass (an error naming
 * `what`, with the last error `check` threw as its cause).
 */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T> | T,
  timeout = 15_000,
  interval = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}`, { cause: last });
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
