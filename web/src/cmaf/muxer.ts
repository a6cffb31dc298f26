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
 * frame of latency), and a video sample's at least `minDurationUs` (1.5 frames at
 * 30 fps unless given): a Media Source Extensions player takes a decode-time jump of
 * more than twice the previous frame's duration for a discontinuity and drops every
 * frame after it until the next keyframe, so with the bare gap as the duration a
 * capture whose frames come 17 / 50 ms apart lost most of each group (Chromium kept 4 of
 * 45 frames). The next sample's duration starts where its own time says; this one
 * reaches a little past it at most. A gap longer than twice the floor still breaks: the
 * publisher makes the frame after it a keyframe (`breaksAfter`).
 */

import { chunk, type Sample } from "./fragment.js";
import { type TrackConfig, initSegment } from "./init.js";

export class TrackMuxer {
  readonly init: Uint8Array;
  private sequence = 1;
  private origin: number | null = null;
  private lastDts: number | null = null;
  private lastDelta: number;

  /** A video sample's shortest duration (timescale units; 0 for audio). */
  readonly minDuration: number;

  constructor(
    readonly config: TrackConfig,
    options: { minDurationUs?: number } = {},
  ) {
    this.init = initSegment(config);
    this.lastDelta = config.kind === "video" ? Math.round(config.timescale / 30) : Math.round(config.timescale / 50);
    const floorUs = options.minDurationUs ?? (config.kind === "video" ? minVideoDurationUs(30) : 0);
    this.minDuration = Math.round((floorUs * config.timescale) / 1e6);
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
    const duration = durationUs ? Math.max(1, Math.round(durationUs * scale)) : Math.max(this.lastDelta, this.minDuration);
    return { data, dts, duration, keyframe };
  }

  /** One CMAF chunk (moof + mdat) of `samples`, with the next sequence number. */
  chunk(samples: Sample[]): Uint8Array {
    return chunk(this.config.trackId, this.sequence++, samples);
  }
}

/** A video sample's shortest duration at `framerate` (1.5 frame intervals, µs): one frame
 * missed (a 2-frame gap) stays within twice it. */
export function minVideoDurationUs(framerate: number): number {
  return 1.5e6 / (framerate > 0 && Number.isFinite(framerate) ? framerate : 30);
}

/** Would a video frame `gapUs` after the previous one break a Media Source Extensions
 * timeline (more than twice the previous sample's duration, which is at least
 * `minDurationUs`)? Then it must be a keyframe, or the player drops it and every frame
 * up to the next keyframe. */
export function breaksAfter(gapUs: number, minDurationUs: number): boolean {
  return gapUs > 2 * minDurationUs;
}
