/**
 * Keeps a live player's playhead a small, explicit distance behind the newest media it
 * has buffered (the live edge).
 *
 * - The target is `targetMs` (default 200 ms), but never less than one object's worth of
 *   media plus a margin: a publisher that sends half-second objects cannot be played
 *   200 ms behind without running dry between objects, so the span the live edge advances
 *   by per append (learned from the appends) raises the effective target.
 * - Behind the target (by more than `slackMs`): playback speeds up, proportionally to how
 *   far behind, between `minRate` and `maxRate` (1.05 to 1.15), until back at the target.
 * - Far behind (more than `seekBeyondMs` over the target): a seek to the target.
 * - At or under the target: normal speed (a dry buffer is left to the media element,
 *   which waits for the next append; the player never slows below 1.0).
 */

export interface CatchUpOptions {
  /** Aim this far behind the newest buffered media (ms, default 200). */
  targetMs?: number;
  /** Fastest catch-up rate (default 1.15). */
  maxRate?: number;
  /** Slowest catch-up rate (default 1.05). */
  minRate?: number;
  /** Start catching up this far over the target (ms, default 50). */
  slackMs?: number;
  /** Seek instead of speeding up this far over the target (ms, default max(1000, 4 x target)). */
  seekBeyondMs?: number;
}

export interface CatchUpAction {
  /** The playback rate to set. */
  rate: number;
  /** A media time to seek to (far behind), or null. */
  seekTo: number | null;
}

export const DEFAULT_TARGET_LATENCY_MS = 200;

export class LiveEdgeController {
  readonly targetMs: number;
  readonly maxRate: number;
  readonly minRate: number;
  readonly slack: number;
  readonly seekBeyond: number;
  /** Media seconds one append adds at the live edge (smoothed; 0 before the first). */
  span = 0;
  private catching = false;

  constructor(options: CatchUpOptions = {}) {
    const target = options.targetMs ?? DEFAULT_TARGET_LATENCY_MS;
    if (!Number.isFinite(target) || target < 0) throw new RangeError(`targetLatencyMs must be a number >= 0 (got ${target})`);
    this.targetMs = target;
    this.maxRate = options.maxRate ?? 1.15;
    this.minRate = Math.min(options.minRate ?? 1.05, this.maxRate);
    this.slack = (options.slackMs ?? 50) / 1000;
    this.seekBeyond = (options.seekBeyondMs ?? Math.max(1000, 4 * target)) / 1000;
  }

  /** The live edge moved forward by `seconds` on one append. */
  observeAppend(seconds: number): void {
    if (!(seconds > 0) || seconds > 10) return; // a gap or a jump, not an object's span
    this.span = this.span === 0 ? seconds : 0.8 * this.span + 0.2 * seconds;
  }

  /** The target in seconds: `targetMs`, or more when objects are longer than that. */
  get target(): number {
    return Math.max(this.targetMs / 1000, this.span > 0 ? this.span + 0.1 : 0);
  }

  /** What to do with `latency` seconds between the playhead and the newest buffered `end`. */
  decide(latency: number, end: number): CatchUpAction {
    const target = this.target;
    if (latency > target + this.seekBeyond) {
      this.catching = false;
      return { rate: 1, seekTo: Math.max(0, end - target) };
    }
    if (latency > target + this.slack || (this.catching && latency > target)) {
      this.catching = true;
      const over = latency - target;
      const rate = Math.min(this.maxRate, Math.max(this.minRate, 1 + over * 0.25));
      return { rate: Math.round(rate * 1000) / 1000, seekTo: null };
    }
    this.catching = false;
    return { rate: 1, seekTo: null };
  }
}
