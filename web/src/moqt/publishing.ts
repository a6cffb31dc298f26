/**
 * The publishing side of a session: tracks it serves to relays that SUBSCRIBE, tracks it
 * PUBLISHes, their groups (one subgroup stream per subscriber) and its PUBLISH_NAMESPACEs.
 */
import { encodeSubgroupHeader, encodeSubgroupObject } from "./data.js";
import { MoqtError, PublishDoneCode, RequestErrorCode } from "./errors.js";
import type { ControlMessage } from "./messages.js";
import {
  FilterType,
  type KeyValue,
  type Location,
  MessageParam,
  type Namespace,
  type SubscriptionFilter,
  decodeFilter,
  encodeLocation,
  pairBytes,
  pairInt,
} from "./params.js";
import type { MoqtSession } from "./session.js";

export interface Sink {
  requestId: number;
  alias: number;
  priority: number;
  forward: boolean;
  /** Objects from this group on (a served SUBSCRIBE joining mid-track). */
  fromGroup: number;
  /** Subgroup streams opened so far (PUBLISH_DONE's Stream Count). */
  streams: number;
}

interface GroupStream {
  w: WritableStreamDefaultWriter<Uint8Array>;
  prev: number | null;
  next: number; // index of the next object to write
  chain: Promise<void>;
  finished: boolean;
}

/** Writes one group (one subgroup stream per subscriber). */
export class GroupWriter {
  private readonly objects: Uint8Array[] = [];
  private readonly streams = new Map<number, GroupStream>();
  private closed = false;

  constructor(
    private readonly track: TrackWriter,
    readonly group: number,
  ) {}

  /** Objects written so far. */
  get size(): number {
    return this.objects.length;
  }

  async _attach(sink: Sink): Promise<void> {
    const w = await this.track._openStream(sink, this.group);
    if (!w) return;
    const state: GroupStream = { w, prev: null, next: 0, chain: Promise.resolve(), finished: false };
    this.streams.set(sink.requestId, state);
    await this.pump(sink.requestId, state);
  }

  _detach(requestId: number): void {
    const s = this.streams.get(requestId);
    this.streams.delete(requestId);
    if (s && !s.finished) {
      s.finished = true;
      s.w.abort(new Error("unsubscribed")).catch(() => undefined);
    }
  }

  /** Write what this stream has not had yet (objects in order, then FIN once closed). */
  private pump(id: number, s: GroupStream): Promise<void> {
    s.chain = s.chain.then(async () => {
      try {
        while (!s.finished && s.next < this.objects.length) {
          const objectId = s.next;
          await s.w.write(encodeSubgroupObject(objectId, s.prev, this.objects[objectId] as Uint8Array));
          s.prev = objectId;
          s.next += 1;
        }
        if (this.closed && !s.finished) {
          s.finished = true;
          await s.w.close();
          this.streams.delete(id);
        }
      } catch {
        // The subscriber reset the stream (or the session ended): it still gets the next group.
        s.finished = true;
        this.streams.delete(id);
      }
    });
    return s.chain;
  }

  /** Write the next object (ids 0, 1, 2...). */
  async write(payload: Uint8Array): Promise<void> {
    if (this.closed) throw new MoqtError("group already closed");
    const objectId = this.objects.length;
    this.objects.push(payload);
    this.track._wrote(this.group, objectId);
    await Promise.all([...this.streams].map(([id, s]) => this.pump(id, s)));
  }

  /** End the group (FIN on every subgroup stream). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.streams].map(([id, s]) => this.pump(id, s)));
  }
}

/** A track this session publishes: to PUBLISH subscribers and/or relays that SUBSCRIBE to it. */
export class TrackWriter {
  readonly sinks = new Map<number, Sink>();
  private current: GroupWriter | null = null;
  largest: Location | null = null;
  ended = false;

  constructor(
    private readonly session: ServedTracks,
    readonly namespace: Namespace,
    readonly name: string,
    readonly priority: number,
  ) {}

  /** Start group `group` (default: the next one); the previous group is closed. */
  openGroup(group?: number): GroupWriter {
    if (this.ended) throw new MoqtError("track ended");
    const id = group ?? (this.largest ? this.largest.group + 1 : 0);
    if (this.largest && id <= this.largest.group) throw new MoqtError(`group ${id} is not after ${this.largest.group}`);
    const previous = this.current;
    if (previous) void previous.close();
    const g = new GroupWriter(this, id);
    this.current = g;
    this.largest = { group: id, object: 0 };
    for (const sink of this.sinks.values()) void g._attach(sink);
    return g;
  }

  _wrote(group: number, object: number): void {
    this.largest = { group, object };
  }

  async _openStream(sink: Sink, group: number): Promise<WritableStreamDefaultWriter<Uint8Array> | null> {
    if (!sink.forward || group < sink.fromGroup || !this.sinks.has(sink.requestId)) return null;
    return this.session._openSubgroup(sink, group);
  }

  _addSink(sink: Sink, replayCurrent: boolean): void {
    this.sinks.set(sink.requestId, sink);
    if (replayCurrent && this.current) void this.current._attach(sink);
  }

  _removeSink(requestId: number): void {
    this.sinks.delete(requestId);
    this.current?._detach(requestId);
  }

  /** End the track: the current group is closed and every subscriber gets PUBLISH_DONE (TRACK_ENDED). */
  async end(reason = "track ended"): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.current?.close();
    for (const sink of [...this.sinks.values()]) {
      this.session._publishDone(sink.requestId, PublishDoneCode.TRACK_ENDED, reason, sink.streams);
      this.sinks.delete(sink.requestId);
    }
    this.session._forgetTrack(this);
  }
}

/** A PUBLISH_NAMESPACE this session made; `done()` withdraws it. */
export class NamespacePublication {
  constructor(
    private readonly session: MoqtSession,
    readonly requestId: number,
    readonly namespace: Namespace,
  ) {}

  done(): void {
    this.session._send({ kind: "publish_namespace_done", requestId: this.requestId });
  }
}


function trackKey(namespace: Namespace, name: string): string {
  return `${namespace.join("\u0000")}\u0001${name}`;
}

/** The tracks a session serves (by namespace and name) and its subscribers' sinks (by request id). */
export class ServedTracks {
  private readonly served = new Map<string, TrackWriter>(); // "ns\0name" -> track
  private readonly sinks = new Map<number, TrackWriter>(); // request id -> track
  private nextAlias = 0;

  constructor(private readonly session: MoqtSession) {}

  newAlias(): number {
    return this.nextAlias++;
  }

  serve(namespace: Namespace, name: string, priority: number): TrackWriter {
    const key = trackKey(namespace, name);
    if (this.served.has(key)) throw new MoqtError(`track ${name} is already served`);
    const track = new TrackWriter(this, namespace, name, priority);
    this.served.set(key, track);
    return track;
  }

  /** The peer answered our PUBLISH `requestId` (alias `alias`) with PUBLISH_OK. */
  published(requestId: number, alias: number, track: TrackWriter, forward: boolean): void {
    this.sinks.set(requestId, track);
    track._addSink({ requestId, alias, priority: track.priority, forward, fromGroup: 0, streams: 0 }, false);
  }

  onSubscribe(msg: Extract<ControlMessage, { kind: "subscribe" }>): void {
    const track = this.served.get(trackKey(msg.namespace, msg.name));
    if (!track || track.ended) {
      this.session._send({
        kind: "request_error",
        requestId: msg.requestId,
        code: RequestErrorCode.DOES_NOT_EXIST,
        retryInterval: 0,
        reason: "no such track",
      });
      return;
    }
    const rawFilter = pairBytes(msg.params, MessageParam.SUBSCRIPTION_FILTER);
    const filter: SubscriptionFilter = rawFilter ? decodeFilter(rawFilter) : { type: FilterType.LARGEST_OBJECT };
    const forward = pairInt(msg.params, MessageParam.FORWARD) !== 0;
    const current = track.largest?.group ?? -1;
    let fromGroup = current + 1;
    let replay = false;
    if (filter.type === FilterType.ABSOLUTE_START || filter.type === FilterType.ABSOLUTE_RANGE) {
      replay = filter.start.group <= current;
      fromGroup = replay ? current : filter.start.group;
    } else if (filter.type === FilterType.LARGEST_OBJECT) {
      replay = current >= 0;
      fromGroup = replay ? current : 0;
    }
    const alias = this.nextAlias++;
    const params: KeyValue[] = [];
    if (track.largest) params.push([MessageParam.LARGEST_OBJECT, encodeLocation(track.largest)]);
    this.session._send({ kind: "subscribe_ok", requestId: msg.requestId, trackAlias: alias, params, extensions: [] });
    const priority = pairInt(msg.params, MessageParam.SUBSCRIBER_PRIORITY) ?? 128;
    this.sinks.set(msg.requestId, track);
    track._addSink({ requestId: msg.requestId, alias, priority, forward, fromGroup, streams: 0 }, replay);
  }

  onUnsubscribe(requestId: number): void {
    const track = this.sinks.get(requestId);
    if (track) {
      const streams = track.sinks.get(requestId)?.streams ?? 0;
      this.sinks.delete(requestId);
      track._removeSink(requestId);
      this._publishDone(requestId, PublishDoneCode.SUBSCRIPTION_ENDED, "unsubscribed", streams);
    }
  }

  async _openSubgroup(sink: Sink, group: number): Promise<WritableStreamDefaultWriter<Uint8Array> | null> {
    if (this.session.isClosed) return null;
    const track = this.sinks.get(sink.requestId);
    try {
      // Newer groups first (sendOrder: higher is sent first), then the track's priority.
      const stream = (await this.session.transport.createUnidirectionalStream({ sendOrder: group })) as WritableStream<Uint8Array>;
      const w = stream.getWriter();
      sink.streams += 1;
      await w.write(encodeSubgroupHeader({ trackAlias: sink.alias, group, priority: track?.priority ?? 128 }));
      return w;
    } catch {
      return null;
    }
  }

  _publishDone(requestId: number, statusCode: number, reason: string, streamCount: number): void {
    this.sinks.delete(requestId);
    if (!this.session.isClosed) this.session._send({ kind: "publish_done", requestId, statusCode, streamCount, reason });
  }

  _forgetTrack(track: TrackWriter): void {
    this.served.delete(trackKey(track.namespace, track.name));
  }
}
