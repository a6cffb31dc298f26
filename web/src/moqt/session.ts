/**
 * One MoQT draft-16 session over WebTransport, both roles (see index.ts for the API): the
 * setup, the control stream, request ids and the requests. The receiving side lives in
 * subscription.ts, the publishing side in publishing.ts, codes and errors in errors.ts.
 */
import { type ControlMessage, FetchType, decodePayload, encodeControl } from "./messages.js";
import {
  FilterType,
  type KeyValue,
  MessageParam,
  type Namespace,
  SetupParam,
  decodeLocation,
  encodeAuthToken,
  encodeFilter,
  pairBytes,
  pairInt,
  toNamespace,
  useValueToken,
} from "./params.js";
import {
  MoqtError,
  RequestErrorCode,
  RequestRefused,
  SessionCloseCode,
  type SessionCloseInfo,
  SessionClosed,
  errorText,
} from "./errors.js";
import { NamespacePublication, ServedTracks, TrackWriter } from "./publishing.js";
import { type SubscribeOptions, Subscription, Subscriptions } from "./subscription.js";
import { type Deferred, deferred } from "./queue.js";
import { ProtocolViolation, Reader, StreamReader, utf8 } from "./wire.js";

export {
  MoqtError,
  PublishDoneCode,
  RequestErrorCode,
  RequestRefused,
  SessionCloseCode,
  SessionClosed,
  type SessionCloseInfo,
} from "./errors.js";
export { GroupWriter, NamespacePublication, TrackWriter } from "./publishing.js";
export { type SubscribeOptions, Subscription, type SubscriptionDone, type SubscriptionItem } from "./subscription.js";

export const ALPN_DRAFT_16 = "moqt-16";

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

const CONTROL_FRAME_MAX = 0xffff;

/** A query's (or fragment's) `token` parameters taken out: the others as they were, and its value. */
function takeToken(part: string): { rest: string; token: string | null; removed: boolean } {
  let token: string | null = null;
  let removed = false;
  const kept = part.split("&").filter((pair) => {
    const eq = pair.indexOf("=");
    let name = eq < 0 ? pair : pair.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, " "));
    } catch {
      return true;
    }
    if (name !== "token") return true;
    removed = true;
    token ??= new URLSearchParams(pair).get("token") || null;
    return false;
  });
  return { rest: kept.join("&"), token, removed };
}

/**
 * The URL for `new WebTransport()` and the token for CLIENT_SETUP. A `?token=` (or `#token=`)
 * of `url` is left out of the URL: picoquic's HTTP/3 (h3zero) refuses a Huffman-coded
 * `:path` longer than 256 bytes, and Chromium Huffman-codes it, so a signed URL's JWT kept
 * browsers off picoquic POPs. The URL's token goes into SETUP instead (the relay reads
 * SETUP's token first, the path's only without one); an explicit `token` is kept over it.
 */
export function splitConnectUrl(url: string, token?: string): { url: string; token: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url, token }; // WebTransport says what is wrong with it
  }
  const query = takeToken(parsed.search.replace(/^\?/, ""));
  const fragment = takeToken(parsed.hash.replace(/^#/, ""));
  if (!query.removed && !fragment.removed) return { url, token };
  if (query.removed) parsed.search = query.rest ? `?${query.rest}` : "";
  if (fragment.removed) parsed.hash = fragment.rest ? `#${fragment.rest}` : "";
  return { url: parsed.href, token: token || query.token || fragment.token || undefined };
}

function toHash(h: ArrayBuffer | Uint8Array): WebTransportHash {
  return { algorithm: "sha-256", value: h instanceof Uint8Array ? h.slice() : h };
}

interface PendingRequest {
  kind: "subscribe" | "fetch" | "publish_namespace" | "publish";
  done: Deferred<ControlMessage>;
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
  private readonly subscriptions = new Subscriptions(this);
  private readonly tracks = new ServedTracks(this);
  /** Called with the new session URI when the peer sends GOAWAY. */
  onGoaway: ((uri: string) => void) | null = null;
  /** SERVER_SETUP parameters. */
  serverParams: KeyValue[] = [];

  private constructor(readonly transport: WebTransport) {
    this.closed = this.closedDeferred.promise;
  }

  /**
   * Open a WebTransport session to `relayUrl` (https://host:port/path?query), negotiate
   * draft-16 (`moqt-16`) and exchange the setup. A token in the URL (`?token=`, `#token=`)
   * is sent in CLIENT_SETUP, not in the CONNECT path ({@link splitConnectUrl}); so is a
   * GOAWAY URI's, which a reconnect passes here too.
   * Rejects with {@link SessionClosed} when the server refuses or cannot be reached.
   */
  static async connect(relayUrl: string, connectOptions: ConnectOptions = {}): Promise<MoqtSession> {
    if (typeof WebTransport === "undefined") throw new MoqtError("this browser has no WebTransport");
    const { url, token } = splitConnectUrl(relayUrl, connectOptions.token);
    const options: ConnectOptions = { ...connectOptions };
    if (token) options.token = token;
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
    void this.subscriptions.acceptStreams(this.transport);
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
    this.subscriptions.shutdown(info, err);
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
      case "publish_done":
        this.subscriptions.onPublishDone(msg.requestId, msg.statusCode, msg.reason);
        return;
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
        this.tracks.onSubscribe(msg);
        return;
      case "unsubscribe":
        this.tracks.onUnsubscribe(msg.requestId);
        return;
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
    this.subscriptions.byRequest.set(id, sub);
    let ok: ControlMessage;
    try {
      ok = await this.request(id, "subscribe", { kind: "subscribe", requestId: id, namespace: ns, name: track, params });
    } catch (e) {
      this.subscriptions.byRequest.delete(id);
      throw e;
    }
    if (ok.kind !== "subscribe_ok") throw new ProtocolViolation(`SUBSCRIBE answered with ${ok.kind}`);
    sub.trackAlias = ok.trackAlias;
    sub.extensions = ok.extensions;
    const largest = pairBytes(ok.params, MessageParam.LARGEST_OBJECT);
    sub.largest = largest ? decodeLocation(largest) : null;
    if (this.subscriptions.byAlias.has(ok.trackAlias)) {
      this.fail(0x5, `duplicate track alias ${ok.trackAlias}`);
      throw new SessionClosed(this.closeInfo as SessionCloseInfo);
    }
    this.subscriptions.setAlias(ok.trackAlias, sub);
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
      this.subscriptions.fetches.set(id, sub);
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
      if (sub.fetchId !== null) this.subscriptions.fetches.delete(sub.fetchId);
      sub.fetchId = null;
      sub.queue.push({ type: "fetchDone" });
    }
  }

  _unsubscribe(sub: Subscription): void {
    if (this.closeInfo) return;
    if (this.subscriptions.byRequest.delete(sub.requestId)) {
      this._send({ kind: "unsubscribe", requestId: sub.requestId });
    }
    if (sub.fetchId !== null && this.subscriptions.fetches.delete(sub.fetchId)) {
      this._send({ kind: "fetch_cancel", requestId: sub.fetchId });
    }
    this.subscriptions.byAlias.delete(sub.trackAlias);
    sub.done.resolve({ statusCode: null, reason: "unsubscribed" });
    sub.queue.close();
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
    return this.tracks.serve(toNamespace(namespace), name, options.priority ?? 128);
  }

  /** PUBLISH `name` in `namespace`: resolves with its writer once the peer answers PUBLISH_OK. */
  async publish(
    namespace: string | Namespace,
    name: string,
    options: { authToken?: string; priority?: number } = {},
  ): Promise<TrackWriter> {
    const ns = toNamespace(namespace);
    const id = await this.newRequestId();
    const alias = this.tracks.newAlias();
    const params: KeyValue[] = [];
    if (options.authToken) params.push([MessageParam.AUTHORIZATION_TOKEN, encodeAuthToken(useValueToken(options.authToken))]);
    const track = new TrackWriter(this.tracks, ns, name, options.priority ?? 128);
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
    this.tracks.published(id, alias, track, forward !== 0);
    return track;
  }
}
