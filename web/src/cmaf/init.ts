/**
 * CMAF headers (ftyp + moov with one track and mvex) for the two codecs the
 * browser publisher encodes: H.264 (`avc1` + `avcC`) and Opus (`Opus` + `dOps`,
 * "Encapsulation of Opus in ISO Base Media File Format" 4.3).
 */

import { BoxWriter, box, concat, fields, fullBox } from "./boxes.js";

export interface VideoTrackConfig {
  kind: "video";
  trackId: number;
  /** Units per second of the track's timestamps (90000 by default). */
  timescale: number;
  width: number;
  height: number;
  /** The AVCDecoderConfigurationRecord (WebCodecs `decoderConfig.description` with `avc.format = "avc"`). */
  avcC: Uint8Array;
}

export interface AudioTrackConfig {
  kind: "audio";
  trackId: number;
  /** 48000 for Opus. */
  timescale: number;
  channels: number;
  sampleRate: number;
  /** Samples (at 48 kHz) to discard at the start, from the encoder's OpusHead; 0 if unknown. */
  preSkip: number;
}

export type TrackConfig = VideoTrackConfig | AudioTrackConfig;

const MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];

function matrix(w: BoxWriter): void {
  for (const v of MATRIX) w.u32(v);
}

/** The RFC 6381 codec string of an avcC record: `avc1.PPCCLL`. */
export function avcCodecString(avcC: Uint8Array): string {
  if (avcC.length < 4 || avcC[0] !== 1) throw new Error("not an AVCDecoderConfigurationRecord");
  const hex = (v: number): string => v.toString(16).padStart(2, "0");
  return `avc1.${hex(avcC[1] as number)}${hex(avcC[2] as number)}${hex(avcC[3] as number)}`;
}

/**
 * The fields of an OpusHead identification header (RFC 7845 5.1, little-endian), which
 * Chromium's AudioEncoder hands out as `decoderConfig.description`; null if it is not one.
 */
export function parseOpusHead(head: Uint8Array | null | undefined): { channels: number; preSkip: number; sampleRate: number } | null {
  if (!head || head.length < 19) return null;
  const magic = String.fromCharCode(...head.subarray(0, 8));
  if (magic !== "OpusHead") return null;
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return { channels: v.getUint8(9), preSkip: v.getUint16(10, true), sampleRate: v.getUint32(12, true) };
}

function ftyp(): Uint8Array {
  return box("ftyp", fields((w) => w.fourcc("iso6").u32(0).fourcc("iso6").fourcc("cmfc").fourcc("mp41")));
}

function mvhd(): Uint8Array {
  return fullBox(
    "mvhd",
    0,
    0,
    fields((w) => {
      w.u32(0).u32(0).u32(1000).u32(0); // times, timescale, duration
      w.u32(0x00010000).u16(0x0100).zeros(10); // rate, volume, reserved
      matrix(w);
      w.zeros(24).u32(0xffffffff); // pre_defined, next_track_ID
    }),
  );
}

function tkhd(t: TrackConfig): Uint8Array {
  return fullBox(
    "tkhd",
    0,
    0x3, // enabled, in movie
    fields((w) => {
      w.u32(0).u32(0).u32(t.trackId).u32(0).u32(0).zeros(8);
      w.u16(0).u16(0).u16(t.kind === "audio" ? 0x0100 : 0).u16(0);
      matrix(w);
      w.u32(t.kind === "video" ? t.width * 65536 : 0).u32(t.kind === "video" ? t.height * 65536 : 0);
    }),
  );
}

function mdhd(t: TrackConfig): Uint8Array {
  // language "und": packed ISO-639-2/T
  return fullBox("mdhd", 0, 0, fields((w) => w.u32(0).u32(0).u32(t.timescale).u32(0).u16(0x55c4).u16(0)));
}

function hdlr(t: TrackConfig): Uint8Array {
  const name = t.kind === "video" ? "VideoHandler" : "SoundHandler";
  return fullBox(
    "hdlr",
    0,
    0,
    fields((w) => {
      w.u32(0).fourcc(t.kind === "video" ? "vide" : "soun").zeros(12);
      for (let i = 0; i < name.length; i++) w.u8(name.charCodeAt(i));
      w.u8(0);
    }),
  );
}

function avc1(t: VideoTrackConfig): Uint8Array {
  return box(
    "avc1",
    fields((w) => {
      w.zeros(6).u16(1); // reserved, data_reference_index
      w.u16(0).u16(0).zeros(12); // pre_defined, reserved, pre_defined
      w.u16(t.width).u16(t.height).u32(0x00480000).u32(0x00480000).u32(0).u16(1);
      w.zeros(32).u16(0x0018).i16(-1); // compressorname, depth, pre_defined
    }),
    box("avcC", t.avcC),
  );
}

function opus(t: AudioTrackConfig): Uint8Array {
  const dOps = box(
    "dOps",
    fields((w) => w.u8(0).u8(t.channels).u16(t.preSkip).u32(t.sampleRate).i16(0).u8(0)),
  );
  return box(
    "Opus",
    fields((w) => {
      w.zeros(6).u16(1); // reserved, data_reference_index
      w.zeros(8).u16(t.channels).u16(16).u16(0).u16(0).u32(48000 * 65536);
    }),
    dOps,
  );
}

function stbl(t: TrackConfig): Uint8Array {
  const entry = t.kind === "video" ? avc1(t) : opus(t);
  const empty = (type: string): Uint8Array => fullBox(type, 0, 0, fields((w) => w.u32(0)));
  return box(
    "stbl",
    fullBox("stsd", 0, 0, fields((w) => w.u32(1)), entry),
    empty("stts"),
    empty("stsc"),
    fullBox("stsz", 0, 0, fields((w) => w.u32(0).u32(0))),
    empty("stco"),
  );
}

function minf(t: TrackConfig): Uint8Array {
  const header =
    t.kind === "video"
      ? fullBox("vmhd", 0, 1, fields((w) => w.zeros(8)))
      : fullBox("smhd", 0, 0, fields((w) => w.zeros(4)));
  const dinf = box("dinf", fullBox("dref", 0, 0, fields((w) => w.u32(1)), fullBox("url ", 0, 1)));
  return box("minf", header, dinf, stbl(t));
}

function trex(t: TrackConfig): Uint8Array {
  return fullBox("trex", 0, 0, fields((w) => w.u32(t.trackId).u32(1).u32(0).u32(0).u32(0)));
}

/** The CMAF header of one track: what the catalog's `initData` carries. */
export function initSegment(t: TrackConfig): Uint8Array {
  const trak = box("trak", tkhd(t), box("mdia", mdhd(t), hdlr(t), minf(t)));
  const moov = box("moov", mvhd(), trak, box("mvex", trex(t)));
  return concat([ftyp(), moov]);
}
