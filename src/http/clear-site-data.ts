/** What a `Clear-Site-Data` header may ask a browser to clear (W3C Clear Site Data, section 3.1). */
export type ClearSiteDataType = 'cookies' | 'storage' | 'cache';

/**
 * The `Clear-Site-Data` header value of a configured list (`["cookies", "storage"]` ->
 * `"cookies", "storage"`), or undefined when the list is `false`: compiled once, sent as is. It is what
 * neutralises tokens the app keeps outside cookies (a SPA's localStorage JWT), which no Set-Cookie can.
 */
export function clearSiteDataHeader(types: readonly ClearSiteDataType[] | false): string | undefined {
  if (types === false || types.length === 0) return undefined;
  return [...new Set(types)].map((t) => `"${t}"`).join(', ');
}
