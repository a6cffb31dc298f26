/**
 * CMAF chunks: `moof` (mfhd, traf with tfhd default-base-is-moof, tfdt v1, trun with
 * per-sample duration/size/flags) + `mdat`, one or more samples of one track.
 */

import { box, concat, fields, fullBox } from "./boxes.js";

export interface Sample {
  /** The encoded sample (H.264: length-prefixed NAL units, as WebCodecs "avc" format gives). */
  data: Uint8Array;
  /** Decode time in the track's timescale. */
  dts: number;
  /** Duration in the track's timescale. */
  duration: number;
  /** A sync sample (SAP type 1): a keyframe, or any Opus packet. */
  keyframe: boolean;
}

const SYNC = 0x02000000; // sample_depends_on = 2 (does not depend on others)
const NON_SYNC = 0x01010000; // sample_depends_on = 1, sample_is_non_sync_sample = 1
const TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400; // data offset, duration, size, flags

/** One CMAF chunk holding `samples` (in decode order) of track `trackId`. */
export function chunk(trackId: number, sequence: number, samples: Sample[]): Uint8Array {
  if (samples.length === 0) throw new Error("a chunk holds at least one sample");
  const first = samples[0] as Sample;
  const build = (dataOffset: number): Uint8Array => {
    const mfhd = fullBox("mfhd", 0, 0, fields((w) => w.u32(sequence)));
    const tfhd = fullBox("tfhd", 0, 0x020000, fields((w) => w.u32(trackId)));
    const tfdt = fullBox("tfdt", 1, 0, fields((w) => w.u64(first.dts)));
    const trun = fullBox(
      "trun",
      0,
      TRUN_FLAGS,
      fields((w) => {
        w.u32(samples.length).i32(dataOffset);
        for (const s of samples) w.u32(s.duration).u32(s.data.length).u32(s.keyframe ? SYNC : NON_SYNC);
      }),
    );
    return box("moof", mfhd, box("traf", tfhd, tfdt, trun));
  };
  const size = build(0).length; // the moof's size does not depend on the offset's value
  const moof = build(size + 8);
  const mdat = box("mdat", ...samples.map((s) => s.data));
  return concat([moof, mdat]);
}
