/**
 * Media Source Extensions helpers and the ISO BMFF parsers they need: open a
 * MediaSource, a serialized SourceBuffer append queue that trims the back buffer on
 * QuotaExceededError, and (pure, testable in node) box walking, the RFC 6381 codec
 * string of an init segment and the tfdt of a media segment.
 */

export interface Box {
  type: string;
  /** Offset of the box header in the buffer. */
  start: number;
  /** Whole box size (header included). */
  size: number;
  /** Offset of the box payload. */
  body: number;
}

const CONTAINERS = new Set(["moov", "trak", "mdia", "minf", "stbl", "moof", "traf", "mvex", "edts", "dinf"]);

function u32(d: Uint8Array, o: number): number {
  return ((d[o]! << 24) >>> 0) + (d[o + 1]! << 16) + (d[o + 2]! << 8) + d[o + 3]!;
}

function fourcc(d: Uint8Array, o: number): string {
  return String.fromCharCode(d[o]!, d[o + 1]!, d[o + 2]!, d[o + 3]!);
}

/** The boxes in data[start, end) (one level). Throws on a box that overruns its parent. */
export function readBoxes(data: Uint8Array, start = 0, end = data.byteLength): Box[] {
  const out: Box[] = [];
  let o = start;
  while (o + 8 <= end) {
    let size = u32(data, o);
    const type = fourcc(data, o + 4);
    let header = 8;
    if (size === 1) {
      if (o + 16 > end) throw new RangeError(`box ${type} at ${o}: truncated 64-bit size`);
      size = u32(data, o + 8) * 2 ** 32 + u32(data, o + 12);
      header = 16;
    } else if (size === 0) {
      size = end - o;
    }
    if (size < header || o + size > end) throw new RangeError(`box ${type} at ${o}: size ${size} overruns ${end}`);
    out.push({ type, start: o, size, body: o + header });
    o += size;
  }
  if (o !== end) throw new RangeError(`trailing ${end - o} bytes at ${o}`);
  return out;
}

/** The first box at a path of types ("moov/trak/mdia"), descending through containers. */
export function findBox(data: Uint8Array, path: string, start = 0, end = data.byteLength): Box | null {
  const [head, ...rest] = path.split("/");
  for (const box of readBoxes(data, start, end)) {
    if (box.type !== head) continue;
    if (rest.length === 0) return box;
    if (!CONTAINERS.has(box.type)) return null;
    const found = findBox(data, rest.join("/"), box.body, box.start + box.size);
    if (found) return found;
  }
  return null;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** Read an MPEG-4 descriptor length (1..4 bytes of 7 bits). */
function descriptorLength(d: Uint8Array, o: number): [number, number] {
  let len = 0;
  for (let i = 0; i < 4; i++) {
    const b = d[o + i]!;
    len = (len << 7) | (b & 0x7f);
    if ((b & 0x80) === 0) return [len, o + i + 1];
  }
  return [len, o + 4];
}

function esdsCodec(d: Uint8Array, esds: Box): string {
  // FullBox header (4), then ES_Descriptor (tag 3).
  let o = esds.body + 4;
  if (d[o] !== 0x03) return "mp4a.40.2";
  let [, p] = descriptorLength(d, o + 1);
  const flags = d[p + 2]!;
  p += 3;
  if (flags & 0x80) p += 2;
  if (flags & 0x40) p += 1 + d[p]!;
  if (flags & 0x20) p += 2;
  if (d[p] !== 0x04) return "mp4a.40.2";
  [, p] = descriptorLength(d, p + 1);
  const oti = d[p]!;
  p += 13;
  if (d[p] === 0x05) {
    const [, q] = descriptorLength(d, p + 1);
    const aot = d[q]! >> 3;
    return `mp4a.${hex2(oti)}.${aot}`;
  }
  return `mp4a.${hex2(oti)}`;
}

/** The RFC 6381 codec string of a CMAF init segment's first track ("avc1.64001f", "mp4a.40.2", "opus"). */
export function codecFromInit(init: Uint8Array): string {
  const stsd = findBox(init, "moov/trak/mdia/minf/stbl/stsd");
  if (!stsd) throw new RangeError("no moov/trak/mdia/minf/stbl/stsd in the init segment");
  // FullBox (4) + entry_count (4), then the first sample entry.
  const entry = readBoxes(init, stsd.body + 8, stsd.start + stsd.size)[0];
  if (!entry) throw new RangeError("empty stsd");
  const kind = entry.type;
  const end = entry.start + entry.size;
  if (kind === "avc1" || kind === "avc3") {
    // VisualSampleEntry: 8 (SampleEntry) + 70 bytes, then child boxes.
    const avcC = readBoxes(init, entry.body + 78, end).find((b) => b.type === "avcC");
    if (!avcC) return kind;
    const p = avcC.body;
    return `${kind}.${hex2(init[p + 1]!)}${hex2(init[p + 2]!)}${hex2(init[p + 3]!)}`;
  }
  if (kind === "mp4a") {
    // AudioSampleEntry: 8 + 20 bytes, then child boxes.
    const esds = readBoxes(init, entry.body + 28, end).find((b) => b.type === "esds");
    return esds ? esdsCodec(init, esds) : "mp4a.40.2";
  }
  if (kind === "Opus") return "opus";
  if (kind === "fLaC") return "flac";
  if (kind === "hvc1" || kind === "hev1" || kind === "av01" || kind === "vp09") return kind;
  return kind;
}

/** The handler of the init segment's first track: "vide", "soun"... */
export function handlerFromInit(init: Uint8Array): string {
  const hdlr = findBox(init, "moov/trak/mdia/hdlr");
  if (!hdlr) throw new RangeError("no moov/trak/mdia/hdlr in the init segment");
  return fourcc(init, hdlr.body + 8);
}

/** The media timescale (mdhd) of the init segment's first track. */
export function timescaleFromInit(init: Uint8Array): number {
  const mdhd = findBox(init, "moov/trak/mdia/mdhd");
  if (!mdhd) throw new RangeError("no moov/trak/mdia/mdhd in the init segment");
  const version = init[mdhd.body]!;
  return u32(init, mdhd.body + (version === 1 ? 20 : 12));
}

/** baseMediaDecodeTime of a media segment's first traf (moof/traf/tfdt), in its timescale. */
export function baseMediaDecodeTime(segment: Uint8Array): number {
  const tfdt = findBox(segment, "moof/traf/tfdt");
  if (!tfdt) throw new RangeError("no moof/traf/tfdt in the media segment");
  const version = segment[tfdt.body]!;
  return version === 1 ? u32(segment, tfdt.body + 4) * 2 ** 32 + u32(segment, tfdt.body + 8) : u32(segment, tfdt.body + 4);
}

/** The MSE type string for a track: `video/mp4; codecs="avc1.64001f"`. */
export function mimeFor(kind: "video" | "audio", codec: string): string {
  return `${kind}/mp4; codecs="${codec}"`;
}

/** Attach a new MediaSource to the element and wait for it to open. */
export function openMediaSource(video: HTMLVideoElement): Promise<{ source: MediaSource; url: string }> {
  const source = new MediaSource();
  const url = URL.createObjectURL(source);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("MediaSource did not open")), 10_000);
    source.addEventListener(
      "sourceopen",
      () => {
        clearTimeout(timer);
        resolve({ source, url });
      },
      { once: true },
    );
    video.src = url;
  });
}

/** Seconds buffered ahead of `time` in the range that contains it (0 when not buffered). */
export function bufferedAhead(buffered: TimeRanges, time: number, slack = 0.1): number {
  for (let i = 0; i < buffered.length; i++) {
    if (buffered.start(i) - slack <= time && time <= buffered.end(i) + slack) return buffered.end(i) - time;
  }
  return 0;
}

/** Where to jump over a hole: the start of the next buffered range when `time` is within
 * `within` seconds of its own range's end (or past it, or in no range), else null. The
 * element waits at a hole for good, even one shorter than a frame. */
export function holeAhead(buffered: TimeRanges, time: number, within = 0.05): number | null {
  if (bufferedAhead(buffered, time) >= within) return null;
  for (let i = 0; i < buffered.length; i++) if (buffered.start(i) > time) return buffered.start(i);
  return null;
}

/** Serializes appendBuffer/remove on one SourceBuffer; trims the back buffer when the quota is hit. */
export class AppendQueue {
  readonly buffer: SourceBuffer;
  #chain: Promise<void> = Promise.resolve();
  #video: HTMLVideoElement;

  constructor(buffer: SourceBuffer, video: HTMLVideoElement) {
    this.buffer = buffer;
    this.#video = video;
  }

  #op(run: () => void): Promise<void> {
    const sb = this.buffer;
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        sb.removeEventListener("updateend", done);
        sb.removeEventListener("error", failed);
        resolve();
      };
      const failed = (): void => {
        sb.removeEventListener("updateend", done);
        sb.removeEventListener("error", failed);
        reject(new Error("SourceBuffer error"));
      };
      sb.addEventListener("updateend", done);
      sb.addEventListener("error", failed);
      try {
        run();
      } catch (err) {
        sb.removeEventListener("updateend", done);
        sb.removeEventListener("error", failed);
        reject(err);
      }
    });
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(task);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  append(data: Uint8Array): Promise<void> {
    return this.#enqueue(async () => {
      try {
        await this.#op(() => this.buffer.appendBuffer(data as BufferSource));
      } catch (err) {
        if (!(err instanceof DOMException && err.name === "QuotaExceededError")) throw err;
        const behind = this.#video.currentTime - 2;
        if (behind > 0) await this.#op(() => this.buffer.remove(0, behind));
        await this.#op(() => this.buffer.appendBuffer(data as BufferSource));
      }
    });
  }

  remove(start: number, end: number): Promise<void> {
    if (end <= start) return Promise.resolve();
    return this.#enqueue(() => this.#op(() => this.buffer.remove(start, end)));
  }

  changeType(type: string): Promise<void> {
    return this.#enqueue(async () => {
      if (typeof this.buffer.changeType === "function") this.buffer.changeType(type);
    });
  }

  /** Abort the append in progress (used on seek). */
  abort(): void {
    try {
      if (this.buffer.updating) this.buffer.abort();
    } catch {
      /* the MediaSource is closing */
    }
  }

  /** Resolves when every queued operation ended. */
  idle(): Promise<void> {
    return this.#chain;
  }
}
