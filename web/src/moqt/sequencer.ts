/**
 * Puts a live track's objects back in decode order for a media pipeline.
 *
 * Objects of one group arrive in order on one subgroup stream, but groups travel on
 * parallel streams (and a joining FETCH delivers the current group's head on yet
 * another), so they interleave. The sequencer releases one group at a time, in
 * object order, starting at a group's first object (a keyframe); it moves to the next
 * group once the current one ended, or skips ahead when the current group stalls
 * while a newer one is already arriving (the relay dropped it, or we fell behind).
 */

export interface SequencedObject {
  group: number;
  object: number;
  payload: Uint8Array;
  arrived: number;
}

interface GroupBuffer {
  objects: Map<number, SequencedObject>;
  ended: boolean;
  lastArrival: number;
}

export class GroupSequencer {
  /** The group being released (null before the first). */
  group: number | null = null;
  /** The next object id of `group` to release. */
  next = 0;
  private readonly groups = new Map<number, GroupBuffer>();
  private lastProgress = 0;
  /** Groups skipped before they ended (stalled or dropped). */
  skipped = 0;
  /** Do not move on to this group or a later one (a rendition switch takes over there). */
  stopBefore = Number.POSITIVE_INFINITY;

  constructor(
    /** Do not start before this group (a rendition switch continues after the old one). */
    public minGroup = 0,
    /** How long a stalled group may hold back a newer one that is arriving (ms). */
    private readonly stallMs = 1500,
  ) {}

  private buffer(group: number): GroupBuffer {
    let g = this.groups.get(group);
    if (!g) {
      g = { objects: new Map(), ended: false, lastArrival: 0 };
      this.groups.set(group, g);
    }
    return g;
  }

  /** Objects that came too late (an older group, or an object already passed). */
  late = 0;
  /** The newest group an object arrived for. */
  newest = -1;

  push(obj: SequencedObject): void {
    this.newest = Math.max(this.newest, obj.group);
    if (obj.group < this.minGroup || (this.group !== null && obj.group < this.group)) {
      this.late += 1;
      return;
    }
    if (this.group === obj.group && obj.object < this.next) {
      this.late += 1;
      return;
    }
    const g = this.buffer(obj.group);
    g.objects.set(obj.object, obj);
    g.lastArrival = obj.arrived;
  }

  /** The subgroup stream of `group` ended (FIN, reset, or an End of Group status). */
  end(group: number): void {
    if (this.group !== null && group < this.group) return;
    this.buffer(group).ended = true;
  }

  /** Groups with a first object, after the current one. */
  private startable(): number[] {
    const out: number[] = [];
    for (const [id, g] of this.groups) {
      if (id >= this.minGroup && (this.group === null || id > this.group) && g.objects.has(0)) out.push(id);
    }
    return out.sort((a, b) => a - b);
  }

  /** Newest group that could start now (for catching up to the live edge). */
  newestStartable(): number | null {
    const s = this.startable();
    return s.length ? (s[s.length - 1] as number) : null;
  }

  /** Move to `group` (its object 0 must be there), dropping everything older. */
  jumpTo(group: number): void {
    if (this.group !== null && this.group !== group) {
      const cur = this.groups.get(this.group);
      if (cur && !cur.ended) this.skipped += 1;
    }
    this.group = group;
    this.next = 0;
    for (const id of [...this.groups.keys()]) if (id < group) this.groups.delete(id);
  }

  /** Release what can be released now, in order. */
  poll(now: number): SequencedObject[] {
    const out: SequencedObject[] = [];
    for (;;) {
      if (this.group === null) {
        const first = this.startable()[0];
        if (first === undefined) return out;
        this.jumpTo(first);
        this.lastProgress = now;
      }
      const cur = this.groups.get(this.group as number) ?? this.buffer(this.group as number);
      const obj = cur.objects.get(this.next);
      if (obj) {
        cur.objects.delete(this.next);
        out.push(obj);
        this.next += 1;
        this.lastProgress = now;
        continue;
      }
      const later = this.startable();
      const following = later[0];
      if (following === undefined || following >= this.stopBefore) return out;
      const done = cur.ended && cur.objects.size === 0;
      const stalled = now - this.lastProgress > this.stallMs;
      if (done || stalled) {
        if (!done) this.skipped += 1;
        this.groups.delete(this.group as number);
        this.group = following;
        this.next = 0;
        this.lastProgress = now;
        continue;
      }
      return out;
    }
  }

  /** The oldest group after the current one that could start now. */
  firstStartable(): number | null {
    return this.startable()[0] ?? null;
  }

  /** The current group ended and everything of it was released. */
  currentDone(): boolean {
    if (this.group === null) return false;
    const cur = this.groups.get(this.group);
    return cur !== undefined && cur.ended && cur.objects.size === 0;
  }

  /** Start no earlier than `group` (drops what is older). */
  raiseMin(group: number): void {
    this.minGroup = Math.max(this.minGroup, group);
    for (const id of [...this.groups.keys()]) if (id < this.minGroup) this.groups.delete(id);
  }

  /** Objects held (all groups). */
  get held(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.objects.size;
    return n;
  }
}
