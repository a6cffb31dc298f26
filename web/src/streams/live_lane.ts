/**
 * One track a live player receives (video, a pending video rendition, or audio): its
 * subscription, the sequencer that puts its objects back in order, and the join logic
 * of its first (fetched) group. Used by ./live.ts.
 */
import type { CatalogTrack } from "../moqt/catalog.js";
import { GroupSequencer } from "../moqt/sequencer.js";
import type { Subscription } from "../moqt/session.js";
import { baseMediaDecodeTime, timescaleFromInit } from "./mse.js";

/** Where an appended object was and its media time (s, its tfdt). */
export interface MediaAt {
  group: number;
  object: number;
  time: number;
}

/** The media time one object spans: the tfdt step from the object appended before it, when
 * it is the very next one (a skipped group or object is no span; neither is the buffered
 * end's step at append completion: appends completing together on a starved page would
 * look like one long object). `at`: this object, null when it has no parsable tfdt. */
export function objectSpan(
  last: MediaAt | null,
  obj: { group: number; object: number; payload: Uint8Array },
  init: Uint8Array | null | undefined,
): { at: MediaAt | null; span: number | null } {
  if (!init) return { at: null, span: null };
  let time: number;
  try {
    time = baseMediaDecodeTime(obj.payload) / timescaleFromInit(init);
  } catch {
    return { at: null, span: null }; // not a parsable fragment
  }
  const next = last && ((obj.group === last.group && obj.object === last.object + 1) || (obj.group === last.group + 1 && obj.object === 0));
  return { at: { group: obj.group, object: obj.object, time }, span: next && time > last.time ? time - last.time : null };
}

/** No object of the group being played for this long (ms) while the next group's first
 * object is already here: the group is taken as ended (`Lane.impliedEnd`). */
export const IMPLIED_END_MS = 150;

export class Lane {
  sub: Subscription | null = null;
  readonly seq: GroupSequencer;
  since = 0;
  /** A newer catalog changed this track's init segment: applied at its next group. */
  freshInit: CatalogTrack | null = null;
  /** Groups the joining FETCH brought, and groups seen on the subscription, until the
   * fetched groups' ends are known (a fetch has no end-of-group marker per group). */
  private fetched = new Set<number>();
  private live = new Set<number>();
  private fetchDone = false;
  private resolved = false;
  /** The newest object appended from this track (group, object): after a reconnect the
   * new lane skips what was already appended (the joining FETCH repeats the group). */
  last: { group: number; object: number } | null = null;
  /** When each recent group's first object, and its newest object, arrived (ms). */
  private readonly started = new Map<number, number>();
  private readonly lastArrival = new Map<number, number>();
  /** Per recent group: its newest object and that object's media time, object 0's media
   * time (s, tfdt); and the media step between consecutive objects (s, smoothed). */
  private readonly media = new Map<number, { newest: number; time: number; first: number | null }>();
  private step = 0;
  /** Skip objects at or before this location (set on a lane that replaces another). */
  resumeAfter: { group: number; object: number } | null = null;
  constructor(
    readonly kind: "video" | "audio",
    public track: CatalogTrack,
    minGroup = 0,
  ) {
    this.seq = new GroupSequencer(minGroup);
  }

  /** An object arrived (`fetched`: from the joining FETCH). */
  arrived(group: number, fetched: boolean): void {
    if (this.resolved) return;
    (fetched ? this.fetched : this.live).add(group);
    this.resolve();
  }

  /** The joining FETCH is complete: every fetched group but the newest has all its objects. */
  fetchComplete(): void {
    if (this.resolved) return;
    this.fetchDone = true;
    const newest = Math.max(-1, ...this.fetched);
    for (const g of this.fetched) if (g < newest) this.seq.end(g);
    this.resolve();
  }

  /** The newest fetched group ended at the fetch's end when the subscription brings none of
   * its objects but already a later group's: the join fell on a group boundary. Without
   * this its group would wait for an end that never comes, and playback would skip it
   * (the sequencer's stall timeout) to begin a whole group later. */
  private resolve(): void {
    if (!this.fetchDone) return;
    const newest = Math.max(-1, ...this.fetched);
    if (newest < 0) {
      this.resolved = true;
      return;
    }
    if (this.live.has(newest)) {
      this.resolved = true; // its live subgroup stream ends it
    } else if ([...this.live].some((g) => g > newest)) {
      this.seq.end(newest);
      this.resolved = true;
    }
    if (this.resolved) {
      this.fetched.clear();
      this.live.clear();
    }
  }

  /** An object of `group` arrived (its subscription's stream or the joining FETCH). */
  noteArrival(group: number, object: number, now: number, payload?: Uint8Array): void {
    if (object === 0) this.started.set(group, now);
    this.lastArrival.set(group, now);
    const init = this.track.initData;
    if (!payload || !init) return;
    let time: number;
    try {
      time = baseMediaDecodeTime(payload) / timescaleFromInit(init);
    } catch {
      return; // not a parsable fragment: the timeout alone decides
    }
    let m = this.media.get(group);
    if (!m) this.media.set(group, (m = { newest: -1, time: 0, first: null }));
    if (object === 0) m.first = time;
    if (m.newest >= 0 && object === m.newest + 1 && time > m.time) {
      const d = time - m.time;
      this.step = this.step === 0 ? d : 0.8 * this.step + 0.2 * d;
    }
    if (object > m.newest) {
      m.newest = object;
      m.time = time;
    }
  }

  /** The group being played ended without its end marker yet: the next group's first
   * object (a keyframe) is here, and either it follows the current group's newest object
   * in media time (less than 1.8 object steps after it: no object of the group is missing
   * at its end) or nothing of the current group came for IMPLIED_END_MS. The sequencer
   * would hold the keyframe until the marker (a stream FIN that loaded relays forwarded up
   * to 2.4 s after the next group's data: bench/RESULTS.md), then skip the group; a
   * straggler of the ended group is dropped as late instead (the next group starts with a
   * keyframe, so decoding loses nothing). */
  impliedEnd(now: number): void {
    const g = this.seq.group;
    if (g === null) return;
    const next = this.started.get(g + 1);
    if (next === undefined) return;
    const cur = this.media.get(g);
    const first = this.media.get(g + 1)?.first;
    const follows = cur !== undefined && first != null && this.step > 0 && first >= cur.time && first - cur.time < 1.8 * this.step;
    if (!follows && now - Math.max(next, this.lastArrival.get(g) ?? 0) < IMPLIED_END_MS) return;
    this.seq.end(g);
    for (const old of this.lastArrival.keys()) if (old < g) this.lastArrival.delete(old);
    for (const old of this.media.keys()) if (old < g) this.media.delete(old);
  }

  /** `group` ended: how long (ms) the next group's first object had waited for that end
   * (the sequencer releases a group once the one before it ended); 0 when it came later. */
  groupEnded(group: number, now: number): number {
    const next = this.started.get(group + 1);
    for (const g of this.started.keys()) if (g <= group) this.started.delete(g);
    for (const g of this.lastArrival.keys()) if (g < group) this.lastArrival.delete(g);
    for (const g of this.media.keys()) if (g < group) this.media.delete(g);
    return next === undefined ? 0 : now - next;
  }

  /** After a reconnect, what this lane repeats of what its predecessor appended: the same
   * group and object ids, or (another numbering) media older than the end of `buffered`
   * (its SourceBuffer's), which appended again would replace buffered frames. The first
   * newer object ends the check. */
  repeated(obj: { group: number; object: number; payload: Uint8Array }, buffered: TimeRanges | undefined): boolean {
    if (!this.resumeAfter) return false;
    if (this.repeats(obj.group, obj.object)) return true;
    try {
      if (buffered?.length && this.track.initData) {
        const t = baseMediaDecodeTime(obj.payload) / timescaleFromInit(this.track.initData);
        if (t < buffered.end(buffered.length - 1) - 0.05) return true;
      }
    } catch {
      // not a parsable fragment: let the append decide
    }
    this.resumeAfter = null;
    return false;
  }

  /** An object this lane already has in the buffer (a reconnect's repeat): skip it. The
   * recent past only (two groups): a publisher that restarted its numbering is let through. */
  repeats(group: number, object: number): boolean {
    const r = this.resumeAfter;
    if (!r) return false;
    return (group === r.group && object <= r.object) || (group < r.group && group >= r.group - 2);
  }
}
