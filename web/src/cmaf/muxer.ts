/**
 * One track's CMAF muxer: WebCodecs chunks (microsecond timestamps) in, CMAF chunks out.
 *
 * ```ts
 * const mux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width, height, avcC });
 * mux.init;                                             // the CMAF header (catalog initData)
 * const bytes = mux.chunk([mux.sample(data, chunk.timestamp, chunk.duration, chunk.type === "key")]);
 * ```
 *
 * Decode times are the capture timestamps rescaled, relative to the first sample,
 * so the track starts at 0. A sample's duration is the encoder's, else the gap to
 * the previous sample (the next one is not known yet: waiting for it would add a
 * frame of latency).
 */

import { chunk, type Sample } from "./fragment.js";
import { type TrackConfig, initSegment } from "./init.js";

export class TrackMuxer {
  readonly init: Uint8Array;
  private sequence = 1;
  private origin: number | null = null;
  private lastDts: number | null = null;
  private lastDelta: number;

  constructor(readonly config: TrackConfig) {
    this.init = initSegment(config);
    this.lastDelta = config.kind === "video" ? Math.round(config.timescale / 30) : Math.round(config.timescale / 50);
  }

  get trackId(): number {
    return this.config.trackId;
  }

  /** A sample from an encoded chunk (`timestampUs`, `durationUs` as WebCodecs gives them). */
  sample(data: Uint8Array, timestampUs: number, durationUs: number | null | undefined, keyframe: boolean): Sample {
    const scale = this.config.timescale / 1e6;
    if (this.origin === null) this.origin = timestampUs;
    let dts = Math.max(0, Math.round((timestampUs - this.origin) * scale));
    if (this.lastDts !== null && dts <= this.lastDts) dts = this.lastDts + 1; // strictly increasing
    if (this.lastDts !== null) this.lastDelta = dts - this.lastDts;
    this.lastDts = dts;
    const duration = durationUs ? Math.max(1, Math.round(durationUs * scale)) : this.lastDelta;
    return { data, dts, duration, keyframe };
  }

  /** One CMAF chunk (moof + mdat) of `samples`, with the next sequence number. */
  chunk(samples: Sample[]): Uint8Array {
    return chunk(this.config.trackId, this.sequence++, samples);
  }
}
