/**
 * Keeps a live player's playhead a small, explicit distance behind the newest media it
 * has buffered (the live edge).
 *
 * - The default target (`"low"`) starts at 200 ms and comes down towards a 130 ms floor
 *   while the path allows it: every 0.5 s, 10 ms lower, as long as the arrival jitter (the
 *   spread, 95th percentile - minimum, of how long after its media time each append's
 *   media became available, over the last ~5 s of appends) stays well below the lower
 *   target (at most half of it, and 50 ms under it). A stall (the player ran dry) puts it
 *   back at 200 ms at once, held there 10 s (20 s, 40 s, at most 60 s after stalls in a
 *   row); a jitter no longer well below the current target raises it at once to where it
 *   is (at most 200 ms). It never goes over
 *   200 ms. A number: that fixed target. `"auto"` (opt-in) follows the jitter both ways:
 *   jitter plus a 50 ms margin, between 100 ms and 1 s (200 ms until 20 appends were
 *   seen); measured worse than the fixed 200 ms on a loaded host (bench/RESULTS.md).
 * - Whatever the mode, never less than one object's worth of media plus a margin: a
 *   publisher that sends half-second objects cannot be played 200 ms behind without
 *   running dry between objects, so the media span of one object (`observeAppend`, which
 *   the player feeds from consecutive objects' media times) raises the effective target.
 * - Behind the target (by more than `slackMs`, 15 ms, in both the latest latency sample and
 *   the mean of the last five): playback speeds up, proportionally to how far behind,
 *   between `minRate` and `maxRate` (1.05 to 1.15), until back at the target.
 * - Far behind (more than `seekBeyondMs` over the target): a seek to the target.
 * - At or under the target: normal speed (a dry buffer is left to the media element,
 *   which waits for the next append; the player never slows below 1.0).
 */

export interface CatchUpOptions {
  /** Aim this far behind the newest buffered media (ms), "low" (default: 200 ms, lower
   * while the jitter allows, down to `floorMs`) or "auto" (from the jitter, both ways). */
  targetMs?: number | "auto" | "low";
  /** "low": the lowest target (ms, default 130). */
  floorMs?: number;
  /** Fastest catch-up rate (default 1.15). */
  maxRate?: number;
  /** Slowest catch-up rate (default 1.05). */
  minRate?: number;
  /** Start catching up this far over the target (ms, default 15; judged on ~1 s of samples). */
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
/** Catch up once this far over the target (ms). It was 50: with a target that stays put,
 * the buffer then sat anywhere from the target to 50 ms over it, wherever the page's
 * hiccups had left it (the bench: 240 ms on one page, 200 on the other, both at 200). */
export const DEFAULT_SLACK_MS = 15;
/** The automatic target's bounds and margin (seconds). */
const AUTO_MIN = 0.1;
const AUTO_MAX = 1.0;
const AUTO_MARGIN = 0.05;
const AUTO_WINDOW = 150; // appends (~5 s of 30 fps video)
const AUTO_MIN_SAMPLES = 20;
/** The "low" target: its floor (s), step (s) and pace (s between steps), the holds after a stall (s). */
export const DEFAULT_FLOOR_MS = 130;
const LOW_STEP = 0.01;
const LOW_PACE = 0.5;
const LOW_MARGIN = 0.05;
const LOW_HOLD = 10;
const LOW_HOLD_MAX = 60;
/** Latency samples averaged for the catch-up decision (ticks of 200 ms: ~1 s). */
const SMOOTH_TICKS = 5;
/** An arrival offset this far (s) from the previous one is a new timeline, not jitter. */
const TIMELINE_JUMP = 5;

export class LiveEdgeController {
  /** The fixed target (ms), or the automatic / low one's starting value (and the low one's ceiling). */
  readonly targetMs: number;
  /** The target follows the arrival jitter (both ways). */
  readonly auto: boolean;
  /** The target comes down from `targetMs` towards `floorMs` while the jitter allows. */
  readonly low: boolean;
  /** "low": the lowest target (ms). */
  readonly floorMs: number;
  /** Stalls reported (`stalled()`). */
  stalls = 0;
  readonly maxRate: number;
  readonly minRate: number;
  readonly slack: number;
  readonly seekBeyond: number;
  /** Media seconds one append adds at the live edge (smoothed; 0 before the first). */
  span = 0;
  private catching = false;
  /** The last few latency samples (`decide`), the newest last. */
  private recent: number[] = [];
  /** Wall-clock seconds minus media end seconds, at each append (the newest last). */
  private offsets: number[] = [];
  /** "low": the current target (s), when it may step down next, the hold after a stall (s). */
  private lowTarget: number;
  private nextStep = -Infinity;
  private hold = 0;
  private lastStall = -Infinity;

  constructor(options: CatchUpOptions = {}) {
    const given = options.targetMs ?? "low";
    this.auto = given === "auto";
    this.low = given === "low";
    const target = typeof given === "string" ? DEFAULT_TARGET_LATENCY_MS : given;
    if ((typeof given === "string" && !this.auto && !this.low) || !Number.isFinite(target) || target < 0) {
      throw new RangeError(`targetLatencyMs must be a number >= 0, "low" or "auto" (got ${String(given)})`);
    }
    this.targetMs = target;
    this.floorMs = options.floorMs ?? Math.min(DEFAULT_FLOOR_MS, target);
    if (!Number.isFinite(this.floorMs) || this.floorMs < 0 || this.floorMs > target) {
      throw new RangeError(`floorMs must be a number from 0 to ${target} (got ${String(options.floorMs)})`);
    }
    this.lowTarget = target / 1000;
    this.maxRate = options.maxRate ?? 1.15;
    this.minRate = Math.min(options.minRate ?? 1.05, this.maxRate);
    this.slack = (options.slackMs ?? DEFAULT_SLACK_MS) / 1000;
    this.seekBeyond = (options.seekBeyondMs ?? Math.max(1000, 4 * target)) / 1000;
  }

  /** One object spans `seconds` of media (the live edge moves by that much per object). */
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
    if (this.low) this.stepLow(now);
  }

  /** "low": one step down when due and the jitter is well below the lower target; back to
   * the ceiling at once when the jitter is no longer well below the current one. */
  private stepLow(now: number): void {
    const jitter = this.jitter;
    if (jitter === null) return;
    const ceiling = this.targetMs / 1000;
    const wellBelow = (t: number): boolean => jitter * 2 <= t + 1e-9 && jitter + LOW_MARGIN <= t + 1e-9;
    if (this.lowTarget < ceiling && !wellBelow(this.lowTarget)) {
      // Up at once, to where the jitter is well below again (at most the ceiling).
      const need = Math.max(jitter * 2, jitter + LOW_MARGIN);
      this.lowTarget = Math.min(ceiling, Math.ceil(need * 1000 - 1e-6) / 1000);
      this.nextStep = now + LOW_PACE * 4;
      return;
    }
    if (now < this.nextStep) return;
    const next = Math.max(this.floorMs / 1000, this.lowTarget - LOW_STEP);
    if (next < this.lowTarget && wellBelow(next)) {
      this.lowTarget = Math.round(next * 1000) / 1000;
      this.nextStep = now + LOW_PACE;
    }
  }

  /** The element is waiting at the end of its media while playing (wall-clock `now`,
   * seconds): a stall, unless what comes next starts later (`resumed(true)`: the publisher's
   * capture paused, a hole the player jumps; not arrival jitter, so "low" keeps its target). */
  waiting(now: number): void {
    if (this.waitingSince === null) this.waitingSince = now;
  }

  /** Media came after `waiting`: in a later range (`hole`, jumped), or continuing the one the
   * playhead waited at (a stall, counted at when the wait began). */
  resumed(hole: boolean): void {
    const since = this.waitingSince;
    if (since === null) return;
    this.waitingSince = null;
    if (!hole) this.stalled(since);
  }

  /** A wait not yet resolved (`waiting`), or null. */
  waitingSince: number | null = null;

  /** The player ran dry while playing (at wall-clock `now`, seconds). "low": back to the
   * ceiling at once, held there 10 s (doubled for stalls in a row, at most 60 s). */
  stalled(now: number): void {
    this.stalls += 1;
    if (!this.low) return;
    this.hold = now - this.lastStall < LOW_HOLD_MAX + this.hold ? Math.min(LOW_HOLD_MAX, Math.max(LOW_HOLD, this.hold * 2)) : LOW_HOLD;
    this.lastStall = now;
    this.lowTarget = this.targetMs / 1000;
    this.nextStep = now + this.hold;
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
    let base = this.low ? this.lowTarget : this.targetMs / 1000;
    const jitter = this.auto ? this.jitter : null;
    if (jitter !== null) base = Math.min(AUTO_MAX, Math.max(AUTO_MIN, jitter + AUTO_MARGIN));
    // One object's worth plus a margin: 100 ms, or the automatic / low target's 50 ms for short
    // (per-frame) objects, whose arrival spread the jitter already measures.
    const margin = (this.auto || this.low) && this.span < 0.1 ? AUTO_MARGIN : 0.1;
    return Math.max(base, this.span > 0 ? this.span + margin : 0);
  }

  /** What to do with `latency` seconds between the playhead and the newest buffered `end`
   * (called every tick). "Behind" is judged on the smaller of this sample and the mean of
   * the last few: one sample is a frame's sawtooth (appends come a frame at a time) plus
   * the arrival jitter, and a sample just after a jump over a hole is not behind at all. */
  decide(latency: number, end: number): CatchUpAction {
    const target = this.target;
    if (latency > target + this.seekBeyond) {
      this.catching = false;
      this.recent.length = 0;
      return { rate: 1, seekTo: Math.max(0, end - target) };
    }
    this.recent.push(latency);
    if (this.recent.length > SMOOTH_TICKS) this.recent.shift();
    const mean = this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
    const behind = Math.min(latency, mean);
    if (behind > target + this.slack || (this.catching && behind > target)) {
      this.catching = true;
      const over = behind - target;
      const rate = Math.min(this.maxRate, Math.max(this.minRate, 1 + over * 0.25));
      return { rate: Math.round(rate * 1000) / 1000, seekTo: null };
    }
    this.catching = false;
    return { rate: 1, seekTo: null };
  }
}
