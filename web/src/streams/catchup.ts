/**
 * Keeps a live player's playhead a small, explicit distance behind the newest media it
 * has buffered (the live edge).
 *
 * - The target is `targetMs` (default 200 ms); with `"auto"` (opt-in) it follows the arrival
 *   jitter: the spread (95th percentile - minimum) of how long after its media time each
 *   append's media became available, over the last ~5 s of appends, plus a 50 ms margin,
 *   between 100 ms and 1 s (200 ms until 20 appends were seen). A quiet path plays closer to
 *   the live edge than a fixed 200 ms; a jittery one is given the buffer it needs (fewer
 *   stalls). Either way, never less than one object's worth of
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
  /** Aim this far behind the newest buffered media (ms, default 200), or "auto" (from the jitter). */
  targetMs?: number | "auto";
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
/** The automatic target's bounds and margin (seconds). */
const AUTO_MIN = 0.1;
const AUTO_MAX = 1.0;
const AUTO_MARGIN = 0.05;
const AUTO_WINDOW = 150; // appends (~5 s of 30 fps video)
const AUTO_MIN_SAMPLES = 20;
/** An arrival offset this far (s) from the previous one is a new timeline, not jitter. */
const TIMELINE_JUMP = 5;

export class LiveEdgeController {
  /** The fixed target (ms), or the automatic one's starting value. */
  readonly targetMs: number;
  /** The target follows the arrival jitter. */
  readonly auto: boolean;
  readonly maxRate: number;
  readonly minRate: number;
  readonly slack: number;
  readonly seekBeyond: number;
  /** Media seconds one append adds at the live edge (smoothed; 0 before the first). */
  span = 0;
  private catching = false;
  /** Wall-clock seconds minus media end seconds, at each append (the newest last). */
  private offsets: number[] = [];

  constructor(options: CatchUpOptions = {}) {
    const given = options.targetMs ?? DEFAULT_TARGET_LATENCY_MS;
    this.auto = given === "auto";
    const target = given === "auto" ? DEFAULT_TARGET_LATENCY_MS : given;
    if (!Number.isFinite(target) || target < 0) throw new RangeError(`targetLatencyMs must be a number >= 0 or "auto" (got ${String(given)})`);
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

  /** An append made the newest buffered media end at `end` (media seconds) at `now`
   * (wall-clock seconds): one sample of the arrival jitter. */
  observeArrival(end: number, now: number): void {
    const offset = now - end;
    const last = this.offsets[this.offsets.length - 1];
    // A new timeline (the publisher restarted its clock), not lateness: measure anew.
    if (last !== undefined && Math.abs(offset - last) > TIMELINE_JUMP) this.offsets.length = 0;
    this.offsets.push(offset);
    if (this.offsets.length > AUTO_WINDOW) this.offsets.shift();
  }

  /** The arrival jitter in seconds (95th percentile - minimum of the offsets), or null before enough appends. */
  get jitter(): number | null {
    if (this.offsets.length < AUTO_MIN_SAMPLES) return null;
    const sorted = [...this.offsets].sort((a, b) => a - b);
    const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] as number;
    return p95 - (sorted[0] as number);
  }

  /** The target in seconds: `targetMs` (or the automatic one), or more when objects are longer. */
  get target(): number {
    let base = this.targetMs / 1000;
    const jitter = this.auto ? this.jitter : null;
    if (jitter !== null) base = Math.min(AUTO_MAX, Math.max(AUTO_MIN, jitter + AUTO_MARGIN));
    // One object's worth plus a margin: 100 ms, or the automatic target's 50 ms for short
    // (per-frame) objects, whose arrival spread the jitter already measures.
    const margin = this.auto && this.span < 0.1 ? AUTO_MARGIN : 0.1;
    return Math.max(base, this.span > 0 ? this.span + margin : 0);
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
