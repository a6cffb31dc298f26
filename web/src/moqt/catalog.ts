/**
 * The broadcast catalog a viewer reads first (media/catalog.py: MSF JSON with CMSF
 * `cmaf` packaging, on the `.catalog` track, one independent catalog per group).
 * Only what playback needs is read; unknown fields are ignored (MSF).
 */

export interface CatalogTrack {
  name: string;
  namespace: string | null;
  role: "video" | "audio" | string;
  codec: string | null;
  bitrate: number;
  width: number | null;
  height: number | null;
  isLive: boolean;
  /** The CMAF header (CMSF `initData`), decoded. */
  initData: Uint8Array | null;
  maxGroupDuration: number | null;
  priority: number | null;
  label: string | null;
}

export interface Catalog {
  isComplete: boolean;
  tracks: CatalogTrack[];
  /** Video tracks with an init segment, highest bitrate first. */
  videos: CatalogTrack[];
  audios: CatalogTrack[];
}

export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CatalogError";
  }
}

function base64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

function roleOf(t: Record<string, unknown>): string {
  const role = str(t["role"]);
  if (role) return role;
  const mime = str(t["mimeType"]) ?? "";
  const codec = str(t["codec"]) ?? "";
  if (mime.startsWith("video/") || /^(avc|hvc|hev|av01|vp0)/.test(codec)) return "video";
  if (mime.startsWith("audio/") || /^(mp4a|opus|flac|ac-3|ec-3)/i.test(codec)) return "audio";
  return "";
}

/** Parse an independent catalog object (a delta update is refused: this system never sends one). */
export function parseCatalog(payload: Uint8Array): Catalog {
  let root: unknown;
  try {
    root = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch (e) {
    throw new CatalogError(`the catalog is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (root === null || typeof root !== "object" || Array.isArray(root)) throw new CatalogError("the catalog is not an object");
  const r = root as Record<string, unknown>;
  if ("deltaUpdate" in r) throw new CatalogError("delta catalog updates are not supported");
  const raw = r["tracks"];
  if (!Array.isArray(raw)) throw new CatalogError("the catalog has no tracks array");
  const inits = new Map<string, string>();
  const list = r["initDataList"];
  if (Array.isArray(list)) {
    for (const e of list as Array<Record<string, unknown>>) {
      const id = str(e?.["id"]);
      const data = str(e?.["data"]);
      if (id && data) inits.set(id, data);
    }
  }
  const tracks: CatalogTrack[] = [];
  for (const item of raw) {
    if (item === null || typeof item !== "object") throw new CatalogError("a catalog track is not an object");
    const t = item as Record<string, unknown>;
    const name = str(t["name"]);
    if (!name) throw new CatalogError("a catalog track has no name");
    const initText = str(t["initData"]) ?? inits.get(str(t["initRef"]) ?? "") ?? null;
    let initData: Uint8Array | null = null;
    if (initText) {
      try {
        initData = base64(initText);
      } catch {
        throw new CatalogError(`track ${name}: initData is not base64`);
      }
    }
    tracks.push({
      name,
      namespace: str(t["namespace"]),
      role: roleOf(t),
      codec: str(t["codec"]),
      bitrate: num(t["bitrate"]) ?? num(t["avgBitrate"]) ?? 0,
      width: num(t["width"]),
      height: num(t["height"]),
      isLive: t["isLive"] !== false,
      initData,
      maxGroupDuration: num(t["maxGroupDuration"]),
      priority: num(t["priority"]),
      label: str(t["label"]),
    });
  }
  const videos = tracks.filter((t) => t.role === "video" && t.initData).sort((a, b) => b.bitrate - a.bitrate);
  const audios = tracks.filter((t) => t.role === "audio" && t.initData);
  return { isComplete: r["isComplete"] === true, tracks, videos, audios };
}
