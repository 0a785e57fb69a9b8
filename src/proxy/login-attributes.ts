import type { UserSource } from '../config/sources.js';
import { issuedJwtClaim, readJsonPath, type Exchange } from '../tokens/exchange.js';

/** What a login says of the user's groups (or tenant): the names, or that it says nothing readable. */
export type AttributeRead =
  | { readonly kind: 'names'; readonly names: readonly string[] }
  | { readonly kind: 'missing' }
  | { readonly kind: 'invalid' };

const MISSING: AttributeRead = Object.freeze({ kind: 'missing' });
const INVALID: AttributeRead = Object.freeze({ kind: 'invalid' });

/** A string, or an array of strings; anything else (a number, an object, a mixed array) is invalid. */
function namesOf(v: unknown): AttributeRead {
  if (v === undefined || v === null) return MISSING;
  if (typeof v === 'string') return v === '' ? MISSING : { kind: 'names', names: [v] };
  if (Array.isArray(v) && v.every((x): x is string => typeof x === 'string' && x !== ''))
    return { kind: 'names', names: v };
  return INVALID;
}

/**
 * Reads a login's groups (sessions.groups.from) or tenant (sessions.seats.key), compiled once at startup:
 * a claim of a JWT the app just issued in this response (no signature check is needed for a token the
 * app itself hands out here; a request's token is only ever trusted through the store), a field of the
 * response JSON, a response header, or a request field read as the app reads it (the rule's request
 * check refused an ambiguous one before the request was forwarded).
 */
export function compileAttributeReader(
  source: UserSource,
): (ex: Exchange, issued: readonly string[]) => AttributeRead {
  switch (source.kind) {
    case 'jwt': {
      const claim = source.claim;
      return (_ex, issued) => {
        const found = issuedJwtClaim(issued, claim);
        return found === undefined ? MISSING : namesOf(found.value);
      };
    }
    case 'json': {
      const path = source.path;
      return (ex) => namesOf(readJsonPath(ex.responseJson, path));
    }
    case 'header': {
      const key = source.name.toLowerCase();
      return (ex) => namesOf(ex.responseHeader(key));
    }
    case 'request.form':
    case 'request.json': {
      const from = source.kind === 'request.form' ? 'form' : 'json';
      const path = source.kind === 'request.form' ? source.field : source.path;
      return (ex) => {
        const r = ex.requestField(from, path);
        return r.kind === 'value' ? namesOf(r.value) : r.kind === 'absent' ? MISSING : INVALID;
      };
    }
    default:
      // The schema admits no other kind for groups and seats (GROUP_SOURCE_KINDS).
      return () => INVALID;
  }
}

/** A login attribute the tap reads (groups, a tenant), with what a login that names none gets. */
export interface LoginAttribute {
  readonly read: (ex: Exchange, issued: readonly string[]) => AttributeRead;
  /** `default`: the default limit (and no seat); `refuse`: 403 SG_ERR_LOGIN_NO_GROUP. */
  readonly onMissing: 'default' | 'refuse';
}
