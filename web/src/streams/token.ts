/**
 * Playback tokens: where a viewer finds one, and what it says.
 *
 * A token comes from the options, else from the page URL (`?token=` or `#token=`).
 * The payload is decoded without verification (the relay and /vod/ verify it); the SDK
 * only reads `sub` (the lv_/pb_ id) and `ns` (the namespace) from it.
 */

export interface TokenClaims {
  sub?: string;
  ns?: string;
  exp?: number;
  jti?: string;
  [claim: string]: unknown;
}

/** The token of the page URL (`?token=` first, then `#token=`), or null. */
export function tokenFromLocation(href?: string): string | null {
  const where = href ?? (typeof location !== "undefined" ? location.href : undefined);
  if (!where) return null;
  let url: URL;
  try {
    url = new URL(where);
  } catch {
    return null;
  }
  const fromQuery = url.searchParams.get("token");
  if (fromQuery) return fromQuery;
  const hash = url.hash.startsWith("#") ? url.hash.slice(1) : url.hash;
  const fromHash = new URLSearchParams(hash).get("token");
  return fromHash || null;
}

/** The token to use: the explicit one, else the page URL's. */
export function resolveToken(explicit?: string | null, href?: string): string | null {
  return explicit ? explicit : tokenFromLocation(href);
}

function base64UrlDecode(part: string): Uint8Array {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const bin = atob(padded);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The payload of a JWT, decoded but NOT verified; null when it is not a JWT. */
export function decodeJwtPayload(token: string): TokenClaims | null {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const json: unknown = JSON.parse(new TextDecoder().decode(base64UrlDecode(parts[1])));
    return json !== null && typeof json === "object" && !Array.isArray(json) ? (json as TokenClaims) : null;
  } catch {
    return null;
  }
}

/** Seconds until the token expires (negative when expired), or null without `exp`. */
export function tokenTtl(token: string, nowMs: number = Date.now()): number | null {
  const exp = decodeJwtPayload(token)?.exp;
  return typeof exp === "number" ? exp - nowMs / 1000 : null;
}
