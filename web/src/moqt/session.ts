/**
 * One MoQT draft-16 session over WebTransport, both roles (see index.ts for the API).
 */
import { type ControlMessage, FetchType, decodePayload, encodeControl } from "./messages.js";
import {
  FilterType,
  type KeyValue,
  type Location,
  MessageParam,
  type Namespace,
  SetupParam,
  type SubscriptionFilter,
  decodeFilter,
  decodeLocation,
  encodeAuthToken,
  encodeFilter,
  encodeLocation,
  pairBytes,
  pairInt,
  toNamespace,
  useValueToken,
} from "./params.js";
import {
  type MoqtObject,
  FetchStreamParser,
  ObjectStatus,
  SubgroupStreamParser,
  classifyStream,
  encodeSubgroupHeader,
  encodeSubgroupObject,
} from "./data.js";
import { AsyncQueue, type Deferred, deferred } from "./queue.js";
import { ProtocolViolation, Reader, StreamReader, utf8 } from "./wire.js";

export const ALPN_DRAFT_16 = "moqt-16";

/** Session termination codes (draft-16). */
export const SessionCloseCode = {
  NO_ERROR: 0x0,
  INTERNAL_ERROR: 0x1,
  UNAUTHORIZED: 0x2,
  PROTOCOL_VIOLATION: 0x3,
  INVALID_REQUEST_ID: 0x4,
  KEY_VALUE_FORMATTING_ERROR: 0x6,
  TOO_MANY_REQUESTS: 0x7,
  CONTROL_MESSAGE_TIMEOUT: 0x11,
  MALFORMED_AUTH_TOKEN: 0x16,
  EXPIRED_AUTH_TOKEN: 0x18,
} as const;

/** REQUEST_ERROR codes (draft-16). */
export const RequestErrorCode = {
  INTERNAL_ERROR: 0x0,
  UNAUTHORIZED: 0x1,
  TIMEOUT: 0x2,
  NOT_SUPPORTED: 0x3,
  MALFORMED_AUTH_TOKEN: 0x4,
  EXPIRED_AUTH_TOKEN: 0x5,
  DOES_NOT_EXIST: 0x10,
} as const;

/** PUBLISH_DONE status codes (draft-16). */
export const PublishDoneCode = {
  INTERNAL_ERROR: 0x0,
  UNAUTHORIZED: 0x1,
  TRACK_ENDED: 0x2,
  SUBSCRIPTION_ENDED: 0x3,
  GOING_AWAY: 0x4,
  EXPIRED: 0x5,
  TOO_FAR_BEHIND: 0x6,
  MALFORMED_TRACK: 0x12,
} as const;

/** How a session ended. `code` null: the connection failed or was lost (no MoQT code). */
export interface SessionCloseInfo {
  code: number | null;
  reason: string;
  byPeer: boolean;
}

export class MoqtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The peer refused a request (REQUEST_ERROR). */
export class RequestRefused extends MoqtError {
  constructor(
    readonly code: number,
    readonly reason: string,
    readonly retryInterval = 0,
  ) {
    super(`request refused (0x${code.toString(16)}): ${reason}`);
  }
}

/** The session is closed (or could not be established). */
export class SessionClosed extends MoqtError {
  constructor(readonly info: SessionCloseInfo) {
    super(`MoQT session closed${info.code === null ? "" : ` (0x${info.code.toString(16)})`}: ${info.reason}`);
  }
}

export interface ConnectOptions {
  /** AUTHORIZATION TOKEN (USE_VALUE, type 0) sent in CLIENT_SETUP: a playback JWT or a stream key. */
  token?: string;
  /** SHA-256 hashes of the server's certificate (self-signed ECDSA, valid <= 14 days). */
  serverCertificateHashes?: ReadonlyArray<ArrayBuffer | Uint8Array>;
  /** MOQT_IMPLEMENTATION setup parameter. */
  implementation?: string;
  /** Connection + setup deadline (ms, default 10000). */
  setupTimeoutMs?: number;
  /** How many requests the peer may open towards us (MAX_REQUEST_ID we send; default 1000). */
  maxPeerRequests?: number;
}

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

const CONTROL_FRAME_MAX = 0xffff;

function toHash(h: ArrayBuffer | Uint8Array): WebTransportHash {
  return { algorithm: "sha-256", value: h instanceof Uint8Array ? h.slice() : h };
}

interface PendingRequest {
  kind: "subscribe" | "fetch" | "publish_namespace" | "publish";
  done: Deferred<ControlMessage>;
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

interface Sink {
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
    private readonly session: MoqtSession,
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

/** One MoQT session: {@link MoqtSession.connect} opens it. */
export class MoqtSession {
  readonly closed: Promise<SessionCloseInfo>;
  private readonly closedDeferred = deferred<SessionCloseInfo>();
  private closeInfo: SessionCloseInfo | null = null;
  private control!: WritableStreamDefaultWriter<Uint8Array>;
  private nextRequestId = 0;
  private maxRequestId = 0; // we may use ids < this
  private requestIdWaiters: Array<() => void> = [];
  private readonly pending = new Map<number, PendingRequest>();
  private readonly subscriptions = new Map<number, Subscription>(); // by request id
  private readonly byAlias = new Map<number, Subscription>();
  private readonly aliasWaiters = new Map<number, Array<(s: Subscription | null) => void>>();
  private readonly fetches = new Map<number, Subscription>(); // fetch request id -> subscription
  private readonly served = new Map<string, TrackWriter>(); // "ns\0name" -> track
  private readonly sinks = new Map<number, TrackWriter>(); // request id -> track
  private nextAlias = 0;
  /** Called with the new session URI when the peer sends GOAWAY. */
  onGoaway: ((uri: string) => void) | null = null;
  /** SERVER_SETUP parameters. */
  serverParams: KeyValue[] = [];

  private constructor(readonly transport: WebTransport) {
    this.closed = this.closedDeferred.promise;
  }

  /**
   * Open a WebTransport session to `url` (https://host:port/path?query; a playback token
   * may also ride as `?token=`), negotiate draft-16 (`moqt-16`) and exchange the setup.
   * Rejects with {@link SessionClosed} when the server refuses or cannot be reached.
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<MoqtSession> {
    if (typeof WebTransport === "undefined") throw new MoqtError("this browser has no WebTransport");
    const init: WebTransportOptions & { protocols?: string[] } = { protocols: [ALPN_DRAFT_16] };
    if (options.serverCertificateHashes?.length) {
      init.serverCertificateHashes = options.serverCertificateHashes.map(toHash);
    }
    let wt: WebTransport;
    try {
      wt = new WebTransport(url, init);
    } catch (e) {
      throw new SessionClosed({ code: null, reason: `bad relay URL: ${String(e)}`, byPeer: false });
    }
    const session = new MoqtSession(wt);
    const timeoutMs = options.setupTimeoutMs ?? 10000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new SessionClosed({ code: null, reason: `no MoQT setup within ${timeoutMs} ms`, byPeer: false }));
      }, timeoutMs);
    });
    try {
      await Promise.race([session.setup(options), timeout]);
    } catch (e) {
      // A refusal during setup arrives as the session's close (e.g. UNAUTHORIZED "auth_failed"),
      // possibly just after the failure it caused here: give it a moment to land.
      if (!session.closeInfo) {
        await Promise.race([wt.closed.catch(() => undefined), new Promise((r) => setTimeout(r, 300))]);
      }
      const info =
        session.closeInfo ??
        (e instanceof SessionClosed ? e.info : { code: null, reason: errorText(e), byPeer: false });
      session.shutdown(info, true);
      throw new SessionClosed(info);
    } finally {
      clearTimeout(timer);
    }
    return session;
  }

  private async setup(options: ConnectOptions): Promise<void> {
    const wt = this.transport;
    wt.closed.then(
      (info) =>
        this.shutdown({ code: info.closeCode ?? 0, reason: info.reason ?? "", byPeer: true }, false),
      (e: unknown) => this.shutdown({ code: null, reason: errorText(e), byPeer: true }, false),
    );
    await wt.ready;
    const bidi = await wt.createBidirectionalStream();
    this.control = bidi.writable.getWriter();
    const params: KeyValue[] = [
      [SetupParam.MAX_REQUEST_ID, options.maxPeerRequests ?? 1000],
      [SetupParam.MOQT_IMPLEMENTATION, utf8(options.implementation ?? "clutchcall-web")],
    ];
    if (options.token) params.push([SetupParam.AUTHORIZATION_TOKEN, encodeAuthToken(useValueToken(options.token))]);
    await this.control.write(encodeControl({ kind: "client_setup", params }));
    const reader = new StreamReader(bidi.readable);
    const first = await this.readControl(reader);
    if (first.kind !== "server_setup") throw new ProtocolViolation(`expected SERVER_SETUP, got ${first.kind}`);
    this.serverParams = first.params;
    this.maxRequestId = pairInt(first.params, SetupParam.MAX_REQUEST_ID) ?? 0;
    void this.controlLoop(reader);
    void this.acceptStreams();
  }

  private async readControl(reader: StreamReader): Promise<ControlMessage> {
    const type = await reader.varint();
    const length = await reader.uint16();
    if (length > CONTROL_FRAME_MAX) throw new ProtocolViolation("control message too long");
    return decodePayload(type, new Reader(await reader.bytes(length)));
  }

  private async controlLoop(reader: StreamReader): Promise<void> {
    try {
      for (;;) {
        if (this.closeInfo) return;
        if (await reader.atEnd()) {
          this.fail(SessionCloseCode.PROTOCOL_VIOLATION, "control stream closed");
          return;
        }
        this.onMessage(await this.readControl(reader));
      }
    } catch (e) {
      if (this.closeInfo) return;
      if (e instanceof ProtocolViolation) this.fail(e.code, e.message);
      else this.shutdown({ code: null, reason: errorText(e), byPeer: true }, false);
    }
  }

  private fail(code: number, reason: string): void {
    this.close(code, reason);
  }

  /** Close the session (CLOSE_WEBTRANSPORT_SESSION with `code` and `reason`). */
  close(code: number = SessionCloseCode.NO_ERROR, reason = ""): void {
    this.shutdown({ code, reason, byPeer: false }, true);
  }

  private shutdown(info: SessionCloseInfo, sendClose: boolean): void {
    if (this.closeInfo) return;
    this.closeInfo = info;
    if (sendClose) {
      try {
        this.transport.close({ closeCode: info.code ?? 0, reason: info.reason.slice(0, 1000) });
      } catch {
        // already closed
      }
    }
    const err = new SessionClosed(info);
    for (const p of this.pending.values()) p.done.reject(err);
    this.pending.clear();
    for (const s of this.subscriptions.values()) {
      s.done.resolve({ statusCode: null, reason: info.reason });
      s.queue.fail(err);
    }
    this.subscriptions.clear();
    for (const waiters of this.aliasWaiters.values()) for (const w of waiters) w(null);
    this.aliasWaiters.clear();
    for (const w of this.requestIdWaiters.splice(0)) w();
    this.closedDeferred.resolve(info);
  }

  /** Request ids: the next one we would use, and the peer's limit (exclusive). */
  get requestIds(): { next: number; max: number } {
    return { next: this.nextRequestId, max: this.maxRequestId };
  }

  get isClosed(): boolean {
    return this.closeInfo !== null;
  }

  _send(msg: ControlMessage): void {
    if (this.closeInfo) throw new SessionClosed(this.closeInfo);
    this.control.write(encodeControl(msg)).catch(() => undefined);
  }

  private async newRequestId(): Promise<number> {
    while (this.nextRequestId >= this.maxRequestId) {
      if (this.closeInfo) throw new SessionClosed(this.closeInfo);
      this._send({ kind: "requests_blocked", maxRequestId: this.maxRequestId });
      await new Promise<void>((resolve) => this.requestIdWaiters.push(resolve));
    }
    if (this.closeInfo) throw new SessionClosed(this.closeInfo);
    const id = this.nextRequestId;
    this.nextRequestId += 2;
    return id;
  }

  private async request(id: number, kind: PendingRequest["kind"], msg: ControlMessage): Promise<ControlMessage> {
    const done = deferred<ControlMessage>();
    this.pending.set(id, { kind, done });
    this._send(msg);
    return done.promise;
  }

  private onMessage(msg: ControlMessage): void {
    switch (msg.kind) {
      case "subscribe_ok":
      case "request_ok":
      case "publish_ok":
      case "fetch_ok": {
        const p = this.pending.get(msg.requestId);
        if (!p) throw new ProtocolViolation(`${msg.kind} for unknown request ${msg.requestId}`, SessionCloseCode.INVALID_REQUEST_ID);
        this.pending.delete(msg.requestId);
        p.done.resolve(msg);
        return;
      }
      case "request_error": {
        const p = this.pending.get(msg.requestId);
        if (!p) return; // e.g. an error for a request we already cancelled
        this.pending.delete(msg.requestId);
        p.done.reject(new RequestRefused(msg.code, msg.reason, msg.retryInterval));
        return;
      }
      case "publish_done": {
        const sub = this.subscriptions.get(msg.requestId);
        if (sub) {
          this.subscriptions.delete(msg.requestId);
          sub.done.resolve({ statusCode: msg.statusCode, reason: msg.reason });
          // Objects still in flight on open streams are delivered before the end.
          setTimeout(() => {
            this.byAlias.delete(sub.trackAlias);
            sub.queue.close();
          }, 500);
        }
        return;
      }
      case "max_request_id":
        if (msg.maxRequestId > this.maxRequestId) {
          this.maxRequestId = msg.maxRequestId;
          for (const w of this.requestIdWaiters.splice(0)) w();
        }
        return;
      case "goaway":
        this.onGoaway?.(msg.uri);
        return;
      case "subscribe":
        this.onSubscribe(msg);
        return;
      case "unsubscribe": {
        const track = this.sinks.get(msg.requestId);
        if (track) {
          const streams = track.sinks.get(msg.requestId)?.streams ?? 0;
          this.sinks.delete(msg.requestId);
          track._removeSink(msg.requestId);
          this._publishDone(msg.requestId, PublishDoneCode.SUBSCRIPTION_ENDED, "unsubscribed", streams);
        }
        return;
      }
      case "request_update":
        this._send({ kind: "request_ok", requestId: msg.requestId, params: [] });
        return;
      case "publish_namespace_cancel":
      case "requests_blocked":
      case "fetch_cancel":
        return;
      case "track_status":
      case "fetch":
      case "publish":
      case "publish_namespace":
        this._send({
          kind: "request_error",
          requestId: msg.requestId,
          code: RequestErrorCode.NOT_SUPPORTED,
          retryInterval: 0,
          reason: `${msg.kind} is not supported by this endpoint`,
        });
        return;
      default:
        throw new ProtocolViolation(`unexpected ${msg.kind}`);
    }
  }

  // --- receiving ---------------------------------------------------------------------------

  /**
   * SUBSCRIBE to `track` in `namespace` ("stream/org/lv_x" or its fields). Resolves once
   * SUBSCRIBE_OK arrives (then `largest` tells the publisher's largest location), rejects
   * with {@link RequestRefused} (e.g. DOES_NOT_EXIST, UNAUTHORIZED) or {@link SessionClosed}.
   */
  async subscribe(namespace: string | Namespace, track: string, options: SubscribeOptions = {}): Promise<Subscription> {
    const ns = toNamespace(namespace);
    const id = await this.newRequestId();
    const filter = options.filter ?? { type: FilterType.LARGEST_OBJECT };
    const params: KeyValue[] = [
      [MessageParam.SUBSCRIBER_PRIORITY, options.priority ?? 128],
      [MessageParam.SUBSCRIPTION_FILTER, encodeFilter(filter)],
    ];
    if (options.authToken) params.push([MessageParam.AUTHORIZATION_TOKEN, encodeAuthToken(useValueToken(options.authToken))]);
    if (options.deliveryTimeoutMs) params.push([MessageParam.DELIVERY_TIMEOUT, options.deliveryTimeoutMs]);
    const sub = new Subscription(this, id, ns, track);
    this.subscriptions.set(id, sub);
    let ok: ControlMessage;
    try {
      ok = await this.request(id, "subscribe", { kind: "subscribe", requestId: id, namespace: ns, name: track, params });
    } catch (e) {
      this.subscriptions.delete(id);
      throw e;
    }
    if (ok.kind !== "subscribe_ok") throw new ProtocolViolation(`SUBSCRIBE answered with ${ok.kind}`);
    sub.trackAlias = ok.trackAlias;
    sub.extensions = ok.extensions;
    const largest = pairBytes(ok.params, MessageParam.LARGEST_OBJECT);
    sub.largest = largest ? decodeLocation(largest) : null;
    if (this.byAlias.has(ok.trackAlias)) {
      this.fail(0x5, `duplicate track alias ${ok.trackAlias}`);
      throw new SessionClosed(this.closeInfo as SessionCloseInfo);
    }
    this.byAlias.set(ok.trackAlias, sub);
    for (const w of this.aliasWaiters.get(ok.trackAlias) ?? []) w(sub);
    this.aliasWaiters.delete(ok.trackAlias);
    if (options.join !== undefined && filter.type === FilterType.LARGEST_OBJECT && sub.largest) {
      void this.joiningFetch(sub, options.join, options.priority ?? 128, options.authToken);
    } else if (options.join !== undefined) {
      sub.queue.push({ type: "fetchDone" });
    }
    return sub;
  }

  private async joiningFetch(sub: Subscription, start: number, priority: number, token?: string): Promise<void> {
    try {
      const id = await this.newRequestId();
      sub.fetchId = id;
      this.fetches.set(id, sub);
      const params: KeyValue[] = [[MessageParam.SUBSCRIBER_PRIORITY, priority]];
      if (token) params.push([MessageParam.AUTHORIZATION_TOKEN, encodeAuthToken(useValueToken(token))]);
      await this.request(id, "fetch", {
        kind: "fetch",
        requestId: id,
        fetchType: FetchType.RELATIVE_JOINING,
        joining: { requestId: sub.requestId, start },
        params,
      });
    } catch {
      if (sub.fetchId !== null) this.fetches.delete(sub.fetchId);
      sub.fetchId = null;
      sub.queue.push({ type: "fetchDone" });
    }
  }

  _unsubscribe(sub: Subscription): void {
    if (this.closeInfo) return;
    if (this.subscriptions.delete(sub.requestId)) {
      this._send({ kind: "unsubscribe", requestId: sub.requestId });
    }
    if (sub.fetchId !== null && this.fetches.delete(sub.fetchId)) {
      this._send({ kind: "fetch_cancel", requestId: sub.fetchId });
    }
    this.byAlias.delete(sub.trackAlias);
    sub.done.resolve({ statusCode: null, reason: "unsubscribed" });
    sub.queue.close();
  }

  private async acceptStreams(): Promise<void> {
    const reader = this.transport.incomingUnidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.closeInfo) return;
        void this.readDataStream(value as ReadableStream<Uint8Array>);
      }
    } catch {
      // the session is gone; shutdown() reports why
    }
  }

  private subscriptionForAlias(alias: number): Promise<Subscription | null> {
    const sub = this.byAlias.get(alias);
    if (sub) return Promise.resolve(sub);
    if (this.closeInfo) return Promise.resolve(null);
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
      sub = await this.subscriptionForAlias(header.trackAlias);
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
      if (e instanceof ProtocolViolation && !this.closeInfo) {
        this.fail(e.code, e.message);
        return;
      }
      // A reset stream (delivery timeout, unsubscribe, relay dropping a stale group).
      if (sub && group >= 0) sub.queue.push({ type: "end", group, subgroup, reset: true });
    }
  }

  // --- publishing --------------------------------------------------------------------------

  /** PUBLISH_NAMESPACE `namespace` (with the stream key as `authToken`); resolves on REQUEST_OK. */
  async publishNamespace(namespace: string | Namespace, options: { authToken?: string } = {}): Promise<NamespacePublication> {
    const ns = toNamespace(namespace);
    const id = await this.newRequestId();
    const params: KeyValue[] = [];
    if (options.authToken) params.push([MessageParam.AUTHORIZATION_TOKEN, encodeAuthToken(useValueToken(options.authToken))]);
    await this.request(id, "publish_namespace", { kind: "publish_namespace", requestId: id, namespace: ns, params });
    return new NamespacePublication(this, id, ns);
  }

  /**
   * A track that relays may SUBSCRIBE to (after {@link publishNamespace}): their
   * subscriptions are answered with SUBSCRIBE_OK and receive every later group (an
   * AbsoluteStart/LargestObject subscriber also gets the current group from its start).
   */
  serveTrack(namespace: string | Namespace, name: string, options: { priority?: number } = {}): TrackWriter {
    const ns = toNamespace(namespace);
    const key = `${ns.join("\u0000")}\u0001${name}`;
    if (this.served.has(key)) throw new MoqtError(`track ${name} is already served`);
    const track = new TrackWriter(this, ns, name, options.priority ?? 128);
    this.served.set(key, track);
    return track;
  }

  /** PUBLISH `name` in `namespace`: resolves with its writer once the peer answers PUBLISH_OK. */
  async publish(
    namespace: string | Namespace,
    name: string,
    options: { authToken?: string; priority?: number } = {},
  ): Promise<TrackWriter> {
    const ns = toNamespace(namespace);
    const id = await this.newRequestId();
    const alias = this.nextAlias++;
    const params: KeyValue[] = [];
    if (options.authToken) params.push([MessageParam.AUTHORIZATION_TOKEN, encodeAuthToken(useValueToken(options.authToken))]);
    const track = new TrackWriter(this, ns, name, options.priority ?? 128);
    const ok = await this.request(id, "publish", {
      kind: "publish",
      requestId: id,
      namespace: ns,
      name,
      trackAlias: alias,
      params,
      extensions: [],
    });
    const forward = ok.kind === "publish_ok" ? pairInt(ok.params, MessageParam.FORWARD) : undefined;
    this.sinks.set(id, track);
    track._addSink({ requestId: id, alias, priority: track.priority, forward: forward !== 0, fromGroup: 0, streams: 0 }, false);
    return track;
  }

  private onSubscribe(msg: Extract<ControlMessage, { kind: "subscribe" }>): void {
    const track = this.served.get(`${msg.namespace.join("\u0000")}\u0001${msg.name}`);
    if (!track || track.ended) {
      this._send({
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
    this._send({ kind: "subscribe_ok", requestId: msg.requestId, trackAlias: alias, params, extensions: [] });
    const priority = pairInt(msg.params, MessageParam.SUBSCRIBER_PRIORITY) ?? 128;
    this.sinks.set(msg.requestId, track);
    track._addSink({ requestId: msg.requestId, alias, priority, forward, fromGroup, streams: 0 }, replay);
  }

  async _openSubgroup(sink: Sink, group: number): Promise<WritableStreamDefaultWriter<Uint8Array> | null> {
    if (this.closeInfo) return null;
    const track = this.sinks.get(sink.requestId);
    try {
      // Newer groups first (sendOrder: higher is sent first), then the track's priority.
      const stream = (await this.transport.createUnidirectionalStream({ sendOrder: group })) as WritableStream<Uint8Array>;
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
    if (!this.closeInfo) this._send({ kind: "publish_done", requestId, statusCode, streamCount, reason });
  }

  _forgetTrack(track: TrackWriter): void {
    this.served.delete(`${track.namespace.join("\u0000")}\u0001${track.name}`);
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
