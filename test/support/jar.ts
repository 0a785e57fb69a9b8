/** A minimal cookie jar for one simulated browser (path and domain ignored: one origin per test). */
export class CookieJar {
  readonly cookies = new Map<string, string>();
  /** Each simulated browser is a device of its own. */
  readonly userAgent: string;

  constructor(userAgent = `TestBrowser/${Math.random().toString(36).slice(2, 8)}`) {
    this.userAgent = userAgent;
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  update(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const eq = (pair as string).indexOf('=');
      const name = (pair as string).slice(0, eq).trim();
      const value = (pair as string).slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=(0|-)/i.test(a) || /^\s*expires=.*1970/i.test(a));
      if (expired || value === '' || value === '""') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  clone(): CookieJar {
    const j = new CookieJar(this.userAgent);
    for (const [k, v] of this.cookies) j.cookies.set(k, v);
    return j;
  }

  /** A request from this browser (a fetch, JSON accepted); cookies updated from the response. */
  async fetch(
    url: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.userAgent,
      ...init.headers,
    };
    if (this.cookies.size > 0) headers.cookie = this.header();
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
      redirect: 'manual',
    });
    this.update(res);
    return res;
  }
}
