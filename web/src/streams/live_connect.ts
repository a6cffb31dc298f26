/**
 * What live playback needs before and around its MoQT session: the namespace of a
 * broadcast, the certificate hash of a development relay, and the mapping of MoQT
 * failures to the SDK's PlaybackError reasons.
 */
import { PlaybackError, type PlaybackErrorReason } from "./errors.js";
import { decodeJwtPayload } from "./token.js";
import { CatalogError } from "../moqt/catalog.js";
import { RequestErrorCode, RequestRefused, SessionClosed, type SessionCloseInfo } from "../moqt/session.js";

/** Where a development relay's certificate hash may be found, and explicit hashes. */
export interface CertificateSource {
  serverCertificateHashes?: Array<string | Uint8Array>;
  apiBase?: string;
}

const AUTH_REQUEST_CODES = new Set<number>([
  RequestErrorCode.UNAUTHORIZED,
  RequestErrorCode.MALFORMED_AUTH_TOKEN,
  RequestErrorCode.EXPIRED_AUTH_TOKEN,
]);
const AUTH_CLOSE_CODES = new Set<number>([0x2, 0x13, 0x14, 0x16, 0x17, 0x18]);

export function reasonForClose(info: SessionCloseInfo): PlaybackErrorReason {
  if (info.reason === "auth_failed" || (info.code !== null && AUTH_CLOSE_CODES.has(info.code))) return "auth_failed";
  return "network";
}

/** A thrown value as a PlaybackError. */
export function asPlaybackError(e: unknown, fallback: PlaybackErrorReason = "network"): PlaybackError {
  if (e instanceof PlaybackError) return e;
  if (e instanceof SessionClosed) return new PlaybackError(reasonForClose(e.info), e.info.reason || e.message, { cause: e });
  if (e instanceof RequestRefused) {
    const reason = AUTH_REQUEST_CODES.has(e.code) ? "auth_failed" : e.code === RequestErrorCode.DOES_NOT_EXIST ? "not_found" : "network";
    return new PlaybackError(reason, e.reason || e.message, { cause: e });
  }
  if (e instanceof CatalogError) return new PlaybackError("decode", e.message, { cause: e });
  return new PlaybackError(fallback, e instanceof Error ? e.message : String(e), { cause: e });
}

export function sameBytes(a: Uint8Array, b: Uint8Array | null): boolean {
  if (!b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isDevHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || /^[\d.]+$/.test(h) || h.includes(":");
}

function hexBytes(hex: string): Uint8Array {
  const clean = hex.replace(/[^0-9a-f]/gi, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function sdkOrigin(): string | null {
  try {
    const u = new URL(import.meta.url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : null;
  } catch {
    return null;
  }
}

/** The relay certificate's hashes: given, or published by the control plane for a dev relay. */
export async function certificateHashes(opts: CertificateSource, relay: URL): Promise<Uint8Array[]> {
  if (opts.serverCertificateHashes?.length) {
    return opts.serverCertificateHashes.map((h) => (typeof h === "string" ? hexBytes(h) : h));
  }
  if (!isDevHost(relay.hostname)) return [];
  const bases = new Set<string>();
  if (opts.apiBase !== undefined) bases.add(opts.apiBase.replace(/\/$/, ""));
  const sdk = sdkOrigin();
  if (sdk) bases.add(sdk);
  if (typeof location !== "undefined" && /^https?:$/.test(location.protocol)) bases.add(location.origin);
  for (const base of bases) {
    try {
      const res = await fetch(`${base}/v1/relay/certificate`, { cache: "no-store", signal: AbortSignal.timeout(3000) });
      if (!res.ok) continue;
      const body = (await res.json()) as { certificate_hashes?: Array<{ algorithm?: string; value?: string }> };
      const hashes = (body.certificate_hashes ?? []).filter((h) => h.algorithm === "sha-256" && typeof h.value === "string");
      if (hashes.length) return hashes.map((h) => hexBytes(h.value as string));
    } catch {
      // not a control plane: try the next base
    }
  }
  return [];
}

/** `stream/<org>/<id>` from the token's `ns` claim, else from the relay URL's path. */
export function namespaceFor(id: string, token: string | null, relay: URL): string {
  const ns = token ? decodeJwtPayload(token)?.ns : undefined;
  const fromClaim = typeof ns === "string" ? ns.split("/").filter(Boolean) : [];
  const fromPath = relay.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  for (const fields of [fromClaim, fromPath]) {
    if (fields.length >= 3 && fields[0] === "stream") return [fields[0], fields[1], id].join("/");
  }
  if (!token) throw new PlaybackError("auth_failed", "no playback token (pass one, or open the page with ?token=)");
  throw new PlaybackError("auth_failed", "the playback token names no stream namespace (ns claim)");
}
