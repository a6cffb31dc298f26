/**
 * Adaptive bitrate for live playback: which video rendition to subscribe to.
 *
 * Inputs, fed by live.ts: every received byte (a sliding-window throughput), the buffer
 * ahead of the playhead, the latency behind the live edge, and groups lost (skipped by
 * the sequencer or reset by the relay). Live media arrives at its own bitrate, so the
 * measured throughput only reveals the path's capacity when the path is the bottleneck;
 * a rendition that does not keep up shows as a draining buffer, growing latency and lost
 * groups, and then the throughput is the path's rate. Hence:
 *
 * - start: the highest rendition within `startBitrate` (navigator.connection.downlink
 *   when the browser tells, else 3 Mbit/s) that is not taller than the element needs;
 * - down: when the current rendition has not kept up for 1 s, to the highest one within
 *   80 % of the measured throughput (the lower of the last 1 s and 3 s; the lowest if none);
 * - up: one step, after `upHoldMs` without trouble; a step up that fails doubles the
 *   hold (up to 2 minutes), so a path that cannot carry it is not probed constantly.
 *
 * Switches take effect at the next group boundary (live.ts subscribes to the new
 * rendition from its next group and cuts over there).
 */

export interface Rendition {
  name: string;
  bitrate: number;
  width: number | null;
  height: number | null;
}

export interface AbrSample {
  now: number;
  /** Seconds buffered ahead of the playhead. */
  bufferAhead: number;
  /** Seconds behind the newest media received. */
  latency: number;
  /** The playhead is waiting for data. */
  stalled: boolean;
}

export interface AbrOptions {
  startBitrate?: number;
  maxHeight?: number | null;
  upHoldMs?: number;
  windowMs?: number;
}

export class AbrController {
  readonly renditions: Rendition[];
  current: string;
  private pinned: string | null = null;
  private bytes: Array<[number, number]> = [];
  private readonly windowMs: number;
  private upHoldMs: number;
  private lastSwitch = 0;
  private troubleSince: number | null = null;
  private lastTrouble = 0;
  private lostGroups: number[] = [];
  private lastUp: { from: string; at: number } | null = null;
  switches = 0;

  constructor(renditions: Rendition[], options: AbrOptions = {}) {
    if (!renditions.length) throw new RangeError("no video rendition");
    this.renditions = [...renditions].sort((a, b) => b.bitrate - a.bitrate);
    this.windowMs = options.windowMs ?? 3000;
    this.upHoldMs = options.upHoldMs ?? 10000;
    const budget = options.startBitrate ?? 3_000_000;
    const maxHeight = options.maxHeight ?? null;
    const fits = this.renditions.filter(
      (r) => r.bitrate <= budget && (maxHeight === null || r.height === null || r.height <= maxHeight),
    );
    this.current = (fits[0] ?? (this.renditions[this.renditions.length - 1] as Rendition)).name;
  }

  /** Pin a rendition (null / "auto": adaptive again). */
  pin(name: string | null): void {
    this.pinned = name && name !== "auto" ? name : null;
  }

  get isPinned(): boolean {
    return this.pinned !== null;
  }

  /** `n` bytes arrived at `now` (ms). */
  received(n: number, now: number): void {
    this.bytes.push([now, n]);
  }

  /** A group was lost (skipped or reset) at `now`. */
  lost(now: number): void {
    this.lostGroups.push(now);
  }

  /** Bits per second over the window (or the last `windowMs` ms). */
  throughput(now: number, windowMs = this.windowMs): number {
    const keep = now - this.windowMs;
    while (this.bytes.length && (this.bytes[0] as [number, number])[0] < keep) this.bytes.shift();
    const since = now - windowMs;
    let total = 0;
    for (const [t, n] of this.bytes) if (t >= since) total += n;
    return (total * 8 * 1000) / windowMs;
  }

  private rendition(name: string): Rendition {
    return this.renditions.find((r) => r.name === name) ?? (this.renditions[0] as Rendition);
  }

  /** The current rendition was switched to `name` (the cut-over happened). */
  switched(name: string, now: number): void {
    const before = this.rendition(this.current);
    this.current = name;
    this.lastSwitch = now;
    this.troubleSince = null;
    this.switches += 1;
    this.lastUp = this.rendition(name).bitrate > before.bitrate ? { from: before.name, at: now } : null;
  }

  /** The rendition to play now (a different name means: switch at the next group). */
  decide(s: AbrSample): string {
    if (this.pinned) return this.pinned;
    const now = s.now;
    if (this.lastSwitch === 0) this.lastSwitch = now; // playback began: the holds count from here
    this.lostGroups = this.lostGroups.filter((t) => t > now - this.windowMs);
    const cur = this.rendition(this.current);
    // What the path carries now: a sudden drop shows in the last second before the window.
    const rate = Math.min(this.throughput(now), this.throughput(now, 1000));
    const trouble = s.stalled || (s.bufferAhead < 0.3 && s.latency > 2.5) || this.lostGroups.length > 0;
    if (trouble) {
      this.troubleSince ??= now;
      this.lastTrouble = now;
    } else if (now - this.lastTrouble > 1000) {
      this.troubleSince = null;
    }
    const settled = now - this.lastSwitch > 2000;
    if (this.troubleSince !== null && settled && now - this.troubleSince >= 1000) {
      const lower = this.renditions.filter((r) => r.bitrate < cur.bitrate);
      if (lower.length) {
        const fit = lower.find((r) => r.bitrate <= 0.8 * rate) ?? (lower[lower.length - 1] as Rendition);
        if (this.lastUp && this.lastUp.from === fit.name && now - this.lastUp.at < 15000) {
          this.upHoldMs = Math.min(this.upHoldMs * 2, 120000);
        }
        return fit.name;
      }
      return cur.name;
    }
    if (this.troubleSince === null && now - this.lastSwitch > this.upHoldMs && now - this.lastTrouble > this.upHoldMs) {
      const higher = this.renditions.filter((r) => r.bitrate > cur.bitrate);
      const next = higher[higher.length - 1];
      if (next) return next.name;
    }
    return cur.name;
  }
}
