/**
 * The pure parts of `onLimit: warn` on the request path: which request is a top-level navigation
 * (sent to the warning page), which `next` may be gone back to, and the header value.
 */
import { describe, expect, it } from 'vitest';
import { isTopLevelNavigation, prefersHtml, warningHeader } from '../../src/proxy/warning.js';
import { sameOriginPath, warningPageUrl, warningSentence } from '../../src/ui/warning.js';

const CHROME_ACCEPT =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7';

describe('a top-level navigation', () => {
  it('is a GET or HEAD with Sec-Fetch-Mode: navigate to a document', () => {
    const nav = { 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', accept: CHROME_ACCEPT };
    expect(isTopLevelNavigation('GET', nav)).toBe(true);
    expect(isTopLevelNavigation('HEAD', nav)).toBe(true);
    expect(isTopLevelNavigation('POST', nav)).toBe(false);
    expect(isTopLevelNavigation('GET', { ...nav, 'sec-fetch-dest': 'iframe' })).toBe(false);
    expect(isTopLevelNavigation('GET', { ...nav, 'sec-fetch-mode': 'cors' })).toBe(false);
    // Fetch Metadata decides where sent, whatever Accept says.
    expect(isTopLevelNavigation('GET', { 'sec-fetch-mode': 'no-cors', accept: CHROME_ACCEPT })).toBe(false);
  });

  it('without Fetch Metadata, is a GET whose Accept prefers HTML, sent by no script', () => {
    expect(isTopLevelNavigation('GET', { accept: CHROME_ACCEPT })).toBe(true);
    expect(isTopLevelNavigation('GET', { accept: '*/*' })).toBe(false);
    expect(isTopLevelNavigation('GET', {})).toBe(false);
    expect(isTopLevelNavigation('GET', { accept: 'text/html', 'x-requested-with': 'XMLHttpRequest' })).toBe(
      false,
    );
    expect(isTopLevelNavigation('GET', { accept: 'text/html', authorization: 'Bearer abc' })).toBe(false);
  });

  it('reads Accept weights: HTML must be acceptable and not outranked', () => {
    expect(prefersHtml(CHROME_ACCEPT)).toBe(true);
    expect(prefersHtml('text/html')).toBe(true);
    expect(prefersHtml('application/json, text/html;q=0.5')).toBe(false);
    expect(prefersHtml('text/html;q=0, */*')).toBe(false);
    expect(prefersHtml('TEXT/HTML; q=0.9, */*;q=0.8')).toBe(true);
    expect(prefersHtml('text/html;q=abc')).toBe(false);
  });
});

describe('where "Yes, continue" goes back to', () => {
  it('is a path and query of this origin, exactly as asked', () => {
    expect(sameOriginPath('/app?tab=2&q=a%20b')).toBe('/app?tab=2&q=a%20b');
    expect(sameOriginPath('/')).toBe('/');
  });

  it('is never another origin, a scheme, a header break or an overlong value', () => {
    for (const bad of [
      'https://evil.example/',
      '//evil.example',
      '/\\evil.example',
      '\\\\evil.example',
      'javascript:alert(1)',
      '/a\r\nset-cookie: x',
      '/a b',
      '/a\u0000',
      'app',
      '',
      `/${'a'.repeat(9000)}`,
    ])
      expect(sameOriginPath(bad)).toBeUndefined();
    expect(sameOriginPath(null)).toBeUndefined();
  });

  it('is carried in the page URL encoded, `/` in place of anything unsafe', () => {
    expect(warningPageUrl('/.sessiongate/', '/app?x=1')).toBe('/.sessiongate/warning?next=%2Fapp%3Fx%3D1');
    expect(warningPageUrl('/.sessiongate/', '//evil.example')).toBe('/.sessiongate/warning?next=%2F');
  });
});

describe('what the warning says', () => {
  const warning = {
    sessionId: 'abc-1',
    at: Date.parse('2026-11-23T10:42:00Z'),
    device: 'Chrome on Windows',
    place: 'Berlin, DE',
  };

  it('names device, place and time; the date too when the login was not today (UTC)', () => {
    expect(warningSentence(warning, Date.parse('2026-11-23T18:00:00Z'))).toBe(
      'A new sign-in to your account from Chrome on Windows in Berlin, DE at 10:42 UTC.',
    );
    expect(warningSentence({ ...warning, place: undefined }, Date.parse('2026-11-24T09:00:00Z'))).toBe(
      'A new sign-in to your account from Chrome on Windows at 23 Nov 2026, 10:42 UTC.',
    );
  });

  it('gives the header the event, the new session and the time, and the same string every time', () => {
    expect(warningHeader(warning)).toBe('session.warned; session=abc-1; at=2026-11-23T10:42:00.000Z');
    expect(warningHeader(warning)).toBe(warningHeader(warning));
    expect(warningHeader({ ...warning, sessionId: 'a; b' })).toBe(
      'session.warned; at=2026-11-23T10:42:00.000Z',
    );
  });
});
