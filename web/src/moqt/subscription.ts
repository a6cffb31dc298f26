/**
 * The receiving side of a session: its subscriptions (SUBSCRIBE, joining FETCH) and the
 * data streams that carry their objects.
 */
import { type MoqtObject, FetchStreamParser, ObjectStatus, SubgroupStreamParser, classifyStream } from "./data.js";
import type { SessionCloseInfo, SessionClosed } from "./errors.js";
import type { KeyValue, Location, Namespace, SubscriptionFilter } from "./params.js";
import { AsyncQueue, type Deferred, deferred } from "./queue.js";
import type { MoqtSession } from "./session.js";
import { ProtocolViolation, StreamReader } from "./wire.js";

export interface SubscribeOptions {
  /** 0 (highest) .. 255; default 128. */
  priority?: number;
  /** Default LargestObject. */
  filter?: SubscriptionFilter;
  /** With a LargestObject filter: a joining FETCH of this many groups before the largest
   * (0: the current group from its first object), delivered first with `fetched: true`. */
  join?: number;
  /** AUTHORIZATION TOKEN of this request (else the session's). */
  authToken?: string;
  /** Ask the relay to drop objects older than this (DELIVERY_TIMEOUT, ms). */
  deliveryTimeoutMs?: number;
}

/** What a subscription yields, in arrival order (groups may interleave across streams). */
export type SubscriptionItem =
  | ({ type: "object"; fetched: boolean } & MoqtObject)
  | { type: "end"; group: number; subgroup: number; reset: boolean }
  | { type: "fetchDone" };

/** Why a subscription ended: PUBLISH_DONE (status code), or the session closing (code null). */
export interface SubscriptionDone {
  statusCode: number | null;
  reason: string;
}

/** A track this session receives (SUBSCRIBE). Iterate it for objects. */
export class Subscription implements AsyncIterable<SubscriptionItem> {
  readonly queue = new AsyncQueue<SubscriptionItem>();
  trackAlias = -1;
  largest: Location | null = null;
  extensions: KeyValue[] = [];
  fetchId: number | null = null;
  readonly done: Deferred<SubscriptionDone> = deferred<SubscriptionDone>();

  constructor(
    private readonly session: MoqtSession,
    readonly requestId: number,
    readonly namespace: Namespace,
    readonly track: string,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<SubscriptionItem> {
    return this.queue[Symbol.asyncIterator]();
  }

  /** Resolves when the publisher ends the subscription (PUBLISH_DONE) or the session closes. */
  get ended(): Promise<SubscriptionDone> {
    return this.done.promise;
  }

  /** UNSUBSCRIBE (and FETCH_CANCEL of its joining fetch); the iteration ends. */
  unsubscribe(): void {
    this.session._unsubscribe(this);
  }
}

/**
 * A session's subscriptions: by request id, by track alias (subgroup streams name it) and
 * by joining FETCH (fetch streams name its request id); reads the incoming data streams
 * into their queues.
 */
export class Subscriptions {
  readonly byRequest = new Map<number, Subscription>();
  readonly byAlias = new Map<number, Subscription>();
  readonly fetches = new Map<number, Subscription>(); // fetch request id -> subscription
  private readonly aliasWaiters = new Map<number, Array<(s: Subscription | null) => void>>();

  constructor(private readonly session: MoqtSession) {}

  /** SUBSCRIBE_OK gave `sub` its alias: objects that overtook it may go on. */
  setAlias(alias: number, sub: Subscription): void {
    this.byAlias.set(alias, sub);
    for (const w of this.aliasWaiters.get(alias) ?? []) w(sub);
    this.aliasWaiters.delete(alias);
  }

  /** PUBLISH_DONE for request `requestId`. */
  onPublishDone(requestId: number, statusCode: number, reason: string): void {
    const sub = this.byRequest.get(requestId);
    if (sub) {
      this.byRequest.delete(requestId);
      sub.done.resolve({ statusCode, reason });
      // Objects still in flight on open streams are delivered before the end.
      setTimeout(() => {
        this.byAlias.delete(sub.trackAlias);
        sub.queue.close();
      }, 500);
    }
  }

  /** The session closed: every subscription ends with `err`. */
  shutdown(info: SessionCloseInfo, err: SessionClosed): void {
    for (const s of this.byRequest.values()) {
      s.done.resolve({ statusCode: null, reason: info.reason });
      s.queue.fail(err);
    }
    this.byRequest.clear();
    for (const waiters of this.aliasWaiters.values()) for (const w of waiters) w(null);
    this.aliasWaiters.clear();
  }

  async acceptStreams(transport: WebTransport): Promise<void> {
    const reader = transport.incomingUnidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.session.isClosed) return;
        void this.readDataStream(value as ReadableStream<Uint8Array>);
      }
    } catch {
      // the session is gone; shutdown() reports why
    }
  }

  private forAlias(alias: number): Promise<Subscription | null> {
    const sub = this.byAlias.get(alias);
    if (sub) return Promise.resolve(sub);
    if (this.session.isClosed) return Promise.resolve(null);
    // Objects may overtake SUBSCRIBE_OK: wait for it a little.
    return new Promise((resolve) => {
      const list = this.aliasWaiters.get(alias) ?? [];
      list.push(resolve);
      this.aliasWaiters.set(alias, list);
      setTimeout(() => resolve(this.byAlias.get(alias) ?? null), 3000);
    });
  }

  private async readDataStream(stream: ReadableStream<Uint8Array>): Promise<void> {
    const s = new StreamReader(stream);
    let sub: Subscription | null = null;
    let group = -1;
    let subgroup = 0;
    try {
      const type = await s.varint();
      if (classifyStream(type) === "fetch") {
        const parser = new FetchStreamParser(s);
        const fetchId = await parser.header();
        const owner = this.fetches.get(fetchId);
        if (!owner) {
          await s.cancel();
          return;
        }
        for (let item = await parser.next(); item; item = await parser.next()) {
          if ("endOfRange" in item) continue;
          owner.queue.push({ type: "object", fetched: true, ...item });
        }
        this.fetches.delete(fetchId);
        owner.fetchId = null;
        owner.queue.push({ type: "fetchDone" });
        return;
      }
      const parser = new SubgroupStreamParser(s, type);
      const header = await parser.header();
      group = header.group;
      sub = await this.forAlias(header.trackAlias);
      if (!sub) {
        await s.cancel();
        return;
      }
      for (let obj = await parser.next(); obj; obj = await parser.next()) {
        subgroup = obj.subgroup;
        if (obj.status === ObjectStatus.NORMAL && obj.payload.length === 0 && obj.extensions.length === 0) continue;
        sub.queue.push({ type: "object", fetched: false, ...obj });
      }
      sub.queue.push({ type: "end", group, subgroup, reset: false });
    } catch (e) {
      if (e instanceof ProtocolViolation && !this.session.isClosed) {
        this.session.close(e.code, e.message);
        return;
      }
      // A reset stream (delivery timeout, unsubscribe, relay dropping a stale group).
      if (sub && group >= 0) sub.queue.push({ type: "end", group, subgroup, reset: true });
    }
  }
}
