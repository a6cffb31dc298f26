/**
 * Split a multi-track fragmented MP4 (what Chromium's MediaRecorder writes for
 * `video/mp4;codecs=avc1,opus`: one moov with both tracks, moofs with one traf per track)
 * into single-track CMAF, which is what a MoQT track carries (CMSF):
 *
 * - {@link splitInit}: per track, `ftyp` + `moov` (mvhd, that trak, mvex with its trex),
 *   with what the catalog needs (codec string, size, timescale, sample rate);
 * - {@link Fmp4Splitter}: bytes in (any chunking), per-track chunks out: each
 *   `moof` + `mdat` becomes one `moof` (mfhd, that traf with its trun's data offset
 *   rewritten, default-base-is-moof) + `mdat` (that track's sample bytes) per track.
 */

import { box, concat } from "./boxes.js";
import { avcCodecString } from "./init.js";

export interface SplitTrack {
  trackId: number;
  kind: "video" | "audio";
  codec: string;
  timescale: number;
  init: Uint8Array;
  width?: number;
  height?: number;
  sampleRate?: number;
  channels?: number;
}

export interface SplitChunk {
  trackId: number;
  /** The chunk starts with a sync sample (always true for audio). */
  keyframe: boolean;
  /** tfdt of the chunk, in the track's timescale. */
  dts: number;
  data: Uint8Array;
}

export class SplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SplitError";
  }
}

interface Box {
  type: string;
  start: number; // offset of the header in the buffer
  body: number; // offset of the body
  end: number;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at] as number) * 0x1000000 + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number))) >>> 0;
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

function u64(b: Uint8Array, at: number): number {
  return u32(b, at) * 0x100000000 + u32(b, at + 4);
}

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at] as number, b[at + 1] as number, b[at + 2] as number, b[at + 3] as number);
}

/** The boxes in b[from, to). */
function children(b: Uint8Array, from: number, to: number): Box[] {
  const out: Box[] = [];
  let at = from;
  while (at + 8 <= to) {
    let size = u32(b, at);
    let body = at + 8;
    if (size === 1) {
      size = u64(b, at + 8);
      body = at + 16;
    } else if (size === 0) size = to - at;
    if (size < body - at || at + size > to) throw new SplitError(`box ${fourcc(b, at + 4)} overruns its parent`);
    out.push({ type: fourcc(b, at + 4), start: at, body, end: at + size });
    at += size;
  }
  return out;
}

function find(b: Uint8Array, parent: Box, type: string): Box | undefined {
  return children(b, parent.body, parent.end).find((c) => c.type === type);
}

function need(b: Uint8Array, parent: Box, type: string): Box {
  const found = find(b, parent, type);
  if (!found) throw new SplitError(`${parent.type} has no ${type}`);
  return found;
}

function whole(b: Uint8Array, x: Box): Uint8Array {
  return b.subarray(x.start, x.end);
}

interface TrackDefaults {
  duration: number;
  size: number;
  flags: number;
}

/** Per-track CMAF headers of a multi-track `ftyp` + `moov`. */
export function splitInit(data: Uint8Array): { tracks: SplitTrack[]; defaults: Map<number, TrackDefaults> } {
  const top = children(data, 0, data.length);
  const ftyp = top.find((x) => x.type === "ftyp");
  const moov = top.find((x) => x.type === "moov");
  if (!moov) throw new SplitError("no moov in the header");
  const mvhd = need(data, moov, "mvhd");
  const mvex = need(data, moov, "mvex");
  const trexes = new Map<number, Box>();
  const defaults = new Map<number, TrackDefaults>();
  for (const trex of children(data, mvex.body, mvex.end).filter((x) => x.type === "trex")) {
    const id = u32(data, trex.body + 4);
    trexes.set(id, trex);
    defaults.set(id, { duration: u32(data, trex.body + 12), size: u32(data, trex.body + 16), flags: u32(data, trex.body + 20) });
  }
  const tracks: SplitTrack[] = [];
  for (const trak of children(data, moov.body, moov.end).filter((x) => x.type === "trak")) {
    const tkhd = need(data, trak, "tkhd");
    const trackId = u32(data, tkhd.body + (data[tkhd.body] === 1 ? 20 : 12));
    const mdia = need(data, trak, "mdia");
    const mdhd = need(data, mdia, "mdhd");
    const timescale = u32(data, mdhd.body + (data[mdhd.body] === 1 ? 20 : 12));
    const handler = fourcc(data, need(data, mdia, "hdlr").body + 8);
    const stbl = need(data, need(data, mdia, "minf"), "stbl");
    const stsd = need(data, stbl, "stsd");
    const entry = children(data, stsd.body + 8, stsd.end)[0];
    const trex = trexes.get(trackId);
    if (!entry || !trex || (handler !== "vide" && handler !== "soun")) continue;
    const init = concat([
      ftyp ? whole(data, ftyp) : new Uint8Array(0),
      box("moov", whole(data, mvhd), whole(data, trak), box("mvex", whole(data, trex))),
    ]);
    if (handler === "vide") {
      const avcC = children(data, entry.body + 78, entry.end).find((x) => x.type === "avcC");
      const codec = avcC ? avcCodecString(data.subarray(avcC.body, avcC.end)) : entry.type;
      tracks.push({
        trackId, kind: "video", codec, timescale, init,
        width: u16(data, entry.body + 24), height: u16(data, entry.body + 26),
      }); // prettier-ignore
    } else {
      const codec = entry.type === "Opus" ? "opus" : entry.type;
      tracks.push({
        trackId, kind: "audio", codec, timescale, init,
        channels: u16(data, entry.body + 16), sampleRate: u32(data, entry.body + 24) >>> 16,
      }); // prettier-ignore
    }
  }
  if (!tracks.length) throw new SplitError("the header has no audio or video track");
  return { tracks, defaults };
}

const BASE_DATA_OFFSET = 0x000001;
const DEFAULT_DURATION = 0x000008;
const DEFAULT_SIZE = 0x000010;
const DEFAULT_FLAGS = 0x000020;
const DEFAULT_BASE_IS_MOOF = 0x020000;
const NON_SYNC = 0x00010000;

/** Split one `moof` + `mdat` pair (both whole, `moof` at `b[moof.start]`) into per-track chunks. */
function splitFragment(b: Uint8Array, moof: Box, mdat: Box, defaults: Map<number, TrackDefaults>): SplitChunk[] {
  const mfhd = need(b, moof, "mfhd");
  const out: SplitChunk[] = [];
  let previousEnd: number | null = null; // where the previous traf's data ended
  for (const traf of children(b, moof.body, moof.end).filter((x) => x.type === "traf")) {
    const tfhd = need(b, traf, "tfhd");
    const tfhdFlags = u32(b, tfhd.body) & 0xffffff;
    const trackId = u32(b, tfhd.body + 4);
    const d = defaults.get(trackId) ?? { duration: 0, size: 0, flags: 0 };
    let at = tfhd.body + 8;
    // Without either flag, a traf after the first continues where the previous one's data ended.
    let base: number = !(tfhdFlags & DEFAULT_BASE_IS_MOOF) && previousEnd !== null ? previousEnd : moof.start;
    if (tfhdFlags & BASE_DATA_OFFSET) {
      base = u64(b, at);
      at += 8;
      if (base !== 0) throw new SplitError("explicit base data offsets are not supported");
      base = moof.start; // relative to the fragment given to us
    }
    if (tfhdFlags & 0x2) at += 4; // sample description index
    const defDuration = tfhdFlags & DEFAULT_DURATION ? u32(b, (at += 4) - 4) : d.duration;
    const defSize = tfhdFlags & DEFAULT_SIZE ? u32(b, (at += 4) - 4) : d.size;
    const defFlags = tfhdFlags & DEFAULT_FLAGS ? u32(b, (at += 4) - 4) : d.flags;
    void defDuration;
    const tfdt = find(b, traf, "tfdt");
    const dts = tfdt ? (b[tfdt.body] === 1 ? u64(b, tfdt.body + 4) : u32(b, tfdt.body + 4)) : 0;
    const runs = children(b, traf.body, traf.end).filter((x) => x.type === "trun");
    if (runs.length !== 1) throw new SplitError(`track ${trackId}: ${runs.length} truns in a traf`);
    const trun = runs[0] as Box;
    const flags = u32(b, trun.body) & 0xffffff;
    const count = u32(b, trun.body + 4);
    let p = trun.body + 8;
    if (!(flags & 0x1)) throw new SplitError(`track ${trackId}: trun without a data offset`);
    const dataOffsetAt = p;
    const dataOffset = u32(b, p) | 0;
    p += 4;
    let firstFlags: number | null = null;
    if (flags & 0x4) {
      firstFlags = u32(b, p);
      p += 4;
    }
    let size = 0;
    let sampleFlags0 = firstFlags ?? defFlags;
    for (let i = 0; i < count; i++) {
      if (flags & 0x100) p += 4;
      let s = defSize;
      if (flags & 0x200) {
        s = u32(b, p);
        p += 4;
      }
      if (flags & 0x400) {
        if (i === 0 && firstFlags === null) sampleFlags0 = u32(b, p);
        p += 4;
      }
      if (flags & 0x800) p += 4;
      size += s;
    }
    const start: number = base + dataOffset;
    if (start < mdat.body || start + size > mdat.end) throw new SplitError(`track ${trackId}: samples outside the mdat`);
    previousEnd = start + size;
    // The new moof: mfhd, this traf with default-base-is-moof and the data offset rewritten.
    const trafBytes = whole(b, traf).slice();
    const rel = (x: number): number => x - traf.start;
    const view = new DataView(trafBytes.buffer);
    let newTfhdFlags = tfhdFlags | DEFAULT_BASE_IS_MOOF;
    let strip = 0;
    if (tfhdFlags & BASE_DATA_OFFSET) {
      newTfhdFlags &= ~BASE_DATA_OFFSET;
      strip = 8; // drop the 8-byte base data offset field
    }
    view.setUint32(rel(tfhd.body), (u32(b, tfhd.body) & 0xff000000) | newTfhdFlags);
    let traf2: Uint8Array = trafBytes;
    if (strip) {
      const cut = rel(tfhd.body + 8);
      traf2 = concat([trafBytes.subarray(0, cut), trafBytes.subarray(cut + strip)]);
      const v2 = new DataView(traf2.buffer);
      v2.setUint32(0, trafBytes.length - strip);
      v2.setUint32(rel(tfhd.start), u32(b, tfhd.start) - strip);
    }
    const moofSize = 8 + (mfhd.end - mfhd.start) + traf2.length;
    const offsetInTraf = rel(dataOffsetAt) - (strip && dataOffsetAt > tfhd.body ? strip : 0);
    new DataView(traf2.buffer, traf2.byteOffset).setInt32(offsetInTraf, moofSize + 8);
    const newMoof = box("moof", whole(b, mfhd), traf2);
    const chunk = concat([newMoof, box("mdat", b.subarray(start, start + size))]);
    out.push({ trackId, keyframe: !(sampleFlags0 & NON_SYNC), dts, data: chunk });
  }
  return out;
}

/** Feed fragmented MP4 bytes in any chunking; get the header's tracks, then per-track chunks. */
export class Fmp4Splitter {
  private buf: Uint8Array = new Uint8Array(0);
  private defaults: Map<number, TrackDefaults> | null = null;
  private pendingMoof: Uint8Array | null = null;
  tracks: SplitTrack[] | null = null;

  /** Chunks completed by `data` (the header, once complete, sets `tracks`). */
  feed(data: Uint8Array): SplitChunk[] {
    this.buf = this.buf.length ? concat([this.buf, data]) : data.slice();
    const out: SplitChunk[] = [];
    let at = 0;
    for (;;) {
      if (at + 8 > this.buf.length) break;
      let size = u32(this.buf, at);
      if (size === 1) {
        if (at + 16 > this.buf.length) break;
        size = u64(this.buf, at + 8);
      }
      if (size < 8) throw new SplitError("bad box size");
      if (at + size > this.buf.length) break;
      const type = fourcc(this.buf, at + 4);
      const bytes = this.buf.subarray(at, at + size);
      at += size;
      if (type === "moov") {
        const header = concat([this.ftyp ?? new Uint8Array(0), bytes]);
        const split = splitInit(header);
        this.tracks = split.tracks;
        this.defaults = split.defaults;
      } else if (type === "ftyp") {
        this.ftyp = bytes.slice();
      } else if (type === "moof") {
        this.pendingMoof = bytes.slice();
      } else if (type === "mdat") {
        if (!this.pendingMoof || !this.defaults) throw new SplitError("mdat without a moof or a header");
        const both = concat([this.pendingMoof, bytes]);
        const moof: Box = { type: "moof", start: 0, body: 8, end: this.pendingMoof.length };
        const mdat: Box = { type: "mdat", start: moof.end, body: moof.end + (both.length - moof.end > 0 && u32(both, moof.end) === 1 ? 16 : 8), end: both.length };
        out.push(...splitFragment(both, moof, mdat, this.defaults));
        this.pendingMoof = null;
      }
      // styp, sidx, free, prft...: not carried
    }
    this.buf = this.buf.subarray(at).slice();
    return out;
  }

  private ftyp: Uint8Array | null = null;
}
