/**
 * The broadcast's catalog as a publisher writes it: MSF JSON with CMSF `cmaf`
 * packaging, each track's CMAF header inline as `initData` (media/catalog.py reads it).
 */

export interface CatalogEntry {
  name: string;
  role: "video" | "audio";
  codec: string;
  bitrate: number;
  init: Uint8Array;
  timescale: number;
  priority: number;
  /** Longest group, in ms (the publisher's timeslice). */
  maxGroupDuration: number;
  width?: number;
  height?: number;
  framerate?: number;
  samplerate?: number;
  channelConfig?: string;
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** The UTF-8 JSON payload of one (independent) catalog object. */
export function catalogPayload(tracks: CatalogEntry[], options: { complete?: boolean } = {}): Uint8Array {
  const root: Record<string, unknown> = { version: 1, generatedAt: Date.now() };
  if (options.complete) root["isComplete"] = true;
  root["tracks"] = tracks.map((t) => {
    const out: Record<string, unknown> = {
      name: t.name,
      packaging: "cmaf",
      isLive: !options.complete,
      role: t.role,
      codec: t.codec,
      mimeType: `${t.role}/mp4`,
      bitrate: Math.round(t.bitrate),
      timescale: t.timescale,
      maxGroupDuration: Math.round(t.maxGroupDuration),
      priority: t.priority,
    };
    if (t.width !== undefined) out["width"] = t.width;
    if (t.height !== undefined) out["height"] = t.height;
    if (t.framerate !== undefined) out["framerate"] = t.framerate;
    if (t.samplerate !== undefined) out["samplerate"] = t.samplerate;
    if (t.channelConfig !== undefined) out["channelConfig"] = t.channelConfig;
    out["initData"] = base64(t.init);
    return out;
  });
  return new TextEncoder().encode(JSON.stringify(root));
}
