/**
 * Publish a MediaStream (webcam + microphone) live over MoQT: recipe 1's
 * `dataPlane.publisher({ timesliceMs }).publish(inputId, streamKey, cam, namespace)`.
 *
 * 1. WebTransport to `relayUrl` (a POP carries publishers to an origin; an origin takes
 *    them directly) with the stream key as CLIENT_SETUP's AUTHORIZATION TOKEN, then
 *    PUBLISH_NAMESPACE `stream/<org>/<input>` with the key again. A development relay
 *    (loopback / IP literal) is pinned with `serverCertificateHashes`, given or read from
 *    the control plane's `GET /v1/relay/certificate`.
 * 2. Default path, WebCodecs: MediaStreamTrackProcessor -> VideoEncoder (H.264, a
 *    keyframe forced every `timesliceMs`) and AudioEncoder (Opus). Every encoded frame is
 *    one CMAF chunk (../cmaf) and one MoQT object; every keyframe starts a group, so a
 *    group is `timesliceMs` long and latency does not grow with it. Audio groups are cut
 *    every `timesliceMs` too (every Opus packet is a sync sample).
 * 3. Fallback where WebCodecs capture is missing (or `capture: "mediarecorder"`):
 *    MediaRecorder with an MP4 mime type and `videoKeyFrameIntervalDuration = timesliceMs`
 *    (Chromium hands out MP4 one GOP at a time whatever the timeslice); its fragments are
 *    split into single-track CMAF (../cmaf/split.ts), each GOP one group and one object.
 * 4. The catalog (`.catalog`, CMSF: each track's CMAF header as `initData`) is written as
 *    soon as every encoder described its output; the relay subscribes to it from the
 *    start and to each track from its next group.
 *
 * `publish()` resolves once the catalog is out (the broadcast goes live at the origin
 * with the next group); it rejects with a {@link PublishError}: `auth_failed` (the stream
 * key was refused), `refused` (the key does not own the namespace, the input is already
 * live), `not_found`, `network`, `unsupported` (no encoder for this browser / stream).
 * Later failures go to `onError`. `stop()` ends the tracks (PUBLISH_DONE) and the session.
 *
 * A lost session or a relay's GOAWAY is reconnected (./reconnect.ts) while capture and
 * encoding go on: a new session (the GOAWAY's URI, else `relayUrl` and `fallbackUrls` in
 * turn), the same namespace and key, the catalog again, and the next group from a forced
 * keyframe; group ids continue where they were. A refused key is never retried.
 */

import {
  MoqtSession,
  type NamespacePublication,
  RequestErrorCode,
  RequestRefused,
  SessionClosed,
  type SessionCloseInfo,
} from "../moqt/index.js";
import { PublishError, type PublishErrorReason } from "./errors.js";
import { certificateHashes } from "./live_connect.js";
import { Broadcast, type PublisherStats } from "./publisher_broadcast.js";
import { Backoff, type ReconnectInfo, type ReconnectOptions, reconnectPolicy, reconnectUrl, sleep } from "./reconnect.js";

export type { PublisherStats } from "./publisher_broadcast.js";

export interface PublisherOptions {
  /** The relay (a POP, or an origin) as an https:// WebTransport URL. */
  relayUrl?: string;
  /** Group length in ms: a keyframe is forced this often (default 1000). */
  timesliceMs?: number;
  /** Video bit/s (default: 2.5 Mbit/s from 720p up, 1 Mbit/s below). */
  videoBitrate?: number;
  /** Audio bit/s (default 64 kbit/s). */
  audioBitrate?: number;
  /** Pin the relay's certificate (SHA-256, hex or bytes); development relays only. */
  serverCertificateHashes?: Array<string | Uint8Array>;
  /** Where `GET /v1/relay/certificate` is asked for a development relay's certificate. */
  apiBase?: string;
  /** "auto" (default): WebCodecs where the browser has it, else MediaRecorder; or force one. */
  capture?: "auto" | "webcodecs" | "mediarecorder";
  /** A failure after `publish()` resolved (an encoder failed, the key was refused, or
   * reconnecting gave up); the publisher has stopped. */
  onError?: (e: PublishError) => void;
  /** Reconnect after a lost session or a GOAWAY (default on: 10 attempts within 20 s,
   * 250 ms doubling to 3 s, jittered); `false`: a loss is `onError(network)`. */
  reconnect?: ReconnectOptions | false;
  /** Other relays to try in turn when the one in use is lost (the same stream key). */
  fallbackUrls?: string[];
  /** Before each reconnect attempt. */
  onReconnecting?: (info: ReconnectInfo) => void;
  /** `connecting` -> `live` <-> `reconnecting` -> `stopped` | `failed`. */
  onStateChange?: (state: PublisherState) => void;
}

/** The publisher's state (`onStateChange`, `stats().state`). */
export type PublisherState = "idle" | "connecting" | "live" | "reconnecting" | "stopped" | "failed";


const AUTH_CODES = new Set<number>([
  RequestErrorCode.UNAUTHORIZED,
  RequestErrorCode.MALFORMED_AUTH_TOKEN,
  RequestErrorCode.EXPIRED_AUTH_TOKEN,
]);

/** A thrown value as a PublishError. */
export function asPublishError(e: unknown, fallback: PublishErrorReason = "network"): PublishError {
  if (e instanceof PublishError) return e;
  if (e instanceof RequestRefused) {
    let reason: PublishErrorReason = "refused";
    if (AUTH_CODES.has(e.code) && /stream key/i.test(e.reason) && !/does not own/i.test(e.reason)) reason = "auth_failed";
    else if (e.code === RequestErrorCode.DOES_NOT_EXIST) reason = "not_found";
    else if (e.code === RequestErrorCode.NOT_SUPPORTED) reason = "unsupported";
    return new PublishError(reason, e.reason || e.message, { cause: e });
  }
  if (e instanceof SessionClosed) return closeError(e.info);
  return new PublishError(fallback, e instanceof Error ? e.message : String(e), { cause: e });
}

function closeError(info: SessionCloseInfo): PublishError {
  if (info.code === null) return new PublishError("network", info.reason || "the relay cannot be reached");
  const auth = info.code === 0x2 || /auth/i.test(info.reason);
  return new PublishError(auth ? "auth_failed" : "network", `the relay closed the session: ${info.reason || info.code}`);
}

/** A webcam/MediaStream publisher (see the module docstring). */
export class Publisher {
  readonly options: PublisherOptions;
  private session: MoqtSession | null = null;
  private broadcast: Broadcast | null = null;
  private ns: NamespacePublication | null = null;
  private stopping = false;
  private reconnecting = false;
  private state: PublisherState = "idle";
  private target: { namespace: string; streamKey: string; urls: string[]; index: number } | null = null;
  /** Sessions that got a GOAWAY (a draining relay answers new sessions with one). */
  private readonly leaving = new WeakSet<MoqtSession>();
  private readonly goawayUris = new WeakMap<MoqtSession, string>();

  constructor(options: PublisherOptions = {}) {
    this.options = options;
  }

  /** Connect, prove `streamKey` for `namespace`, and stream `mediaStream` (see the module docstring). */
  async publish(inputId: string, streamKey: string, mediaStream: MediaStream, namespace?: string): Promise<void> {
    if (this.session) throw new PublishError("refused", "this publisher is already publishing: stop() it first");
    const timesliceMs = this.options.timesliceMs ?? 1000;
    if (!Number.isFinite(timesliceMs) || timesliceMs < 50 || timesliceMs > 10000) {
      throw new PublishError("unsupported", "timesliceMs must be from 50 to 10000");
    }
    if (!this.options.relayUrl) throw new PublishError("unsupported", "no relayUrl: give it to Streams({ relayUrl }) or the publisher");
    if (!inputId || !streamKey) throw new PublishError("refused", "inputId and streamKey are required");
    const ns = namespace ?? "";
    const fields = ns.split("/").filter(Boolean);
    if (fields.length !== 3 || fields[0] !== "stream" || fields[2] !== inputId) {
      throw new PublishError("refused", `namespace must be stream/<org_id>/${inputId}, got ${JSON.stringify(namespace ?? null)}`);
    }
    let relay: URL;
    try {
      relay = new URL(this.options.relayUrl);
      reconnectPolicy(this.options.reconnect);
    } catch (e) {
      if (e instanceof RangeError) throw new PublishError("unsupported", e.message);
      throw new PublishError("network", `bad relayUrl ${JSON.stringify(this.options.relayUrl)}`);
    }
    this.stopping = false;
    this.setState("connecting", true);
    const target = { namespace: fields.join("/"), streamKey, urls: [relay.toString(), ...(this.options.fallbackUrls ?? [])], index: 0 };
    this.target = target;
    let session: MoqtSession;
    try {
      session = await this.connect(relay.toString(), streamKey, 10000);
    } catch (e) {
      this.setState("failed");
      throw asPublishError(e);
    }
    this.session = session;
    try {
      const broadcast = new Broadcast(session, target.namespace, mediaStream, { ...this.options, timesliceMs }, (e) => this.failed(e));
      this.broadcast = broadcast;
      this.ns = await session.publishNamespace(target.namespace, { authToken: streamKey });
      await broadcast.start();
      this.setState("live");
      if (this.leaving.has(session)) {
        const uri = this.goawayUris.get(session) ?? "";
        setTimeout(() => void this.reconnect("goaway", "the relay is going away", uri), 0);
      }
    } catch (e) {
      const error = asPublishError(e);
      this.teardown("publish failed");
      this.setState("failed");
      throw error;
    }
  }

  /** Counters of the broadcast in progress (or the last one). */
  stats(): PublisherStats & { state: PublisherState } {
    const zero = { capture: "" as const, sessions: 0, encodeMs: 0, videoFrames: 0, audioFrames: 0, droppedFrames: 0, gapKeyframes: 0, groups: 0, bytes: 0 };
    return { ...(this.broadcast?.stats ?? zero), state: this.state };
  }

  /** End the broadcast: the final catalog, PUBLISH_DONE on every track, the session closed. */
  stop(): void {
    if (this.state !== "failed") this.setState("stopped");
    this.teardown("publisher stopped");
  }

  private setState(state: PublisherState, force = false): void {
    if (this.state === state || (!force && (this.state === "stopped" || this.state === "failed"))) return;
    this.state = state;
    try {
      this.options.onStateChange?.(state);
    } catch {
      // the application's callback threw
    }
  }

  private async connect(url: string, streamKey: string, setupTimeoutMs: number): Promise<MoqtSession> {
    const hashes = await certificateHashes(this.options, new URL(url));
    const session = await MoqtSession.connect(url, {
      token: streamKey,
      setupTimeoutMs,
      implementation: "clutchcall-web-publisher",
      ...(hashes.length ? { serverCertificateHashes: hashes } : {}),
    });
    void session.closed.then((info) => {
      if (this.stopping || this.session !== session) return;
      const error = closeError(info);
      if (!this.broadcast?.isLive) this.broadcast?.abortStart(error); // publish() rejects with it
      else if (error.reason === "auth_failed") this.failed(error);
      else void this.reconnect("network", error.message);
    });
    session.onGoaway = (uri) => {
      this.leaving.add(session);
      let next = "";
      try {
        next = uri ? new URL(uri, url).href : "";
      } catch {
        next = "";
      }
      this.goawayUris.set(session, next);
      // While publish() runs, the session still serves: the move comes once live.
      if (this.stopping || this.session !== session || !this.target || !this.broadcast?.isLive) return;
      void this.reconnect("goaway", `the relay is going away${uri ? ` (to ${uri})` : ""}`, next);
    };
    return session;
  }

  /** Reconnect with backoff; the broadcast's capture goes on meanwhile. */
  private async reconnect(cause: "goaway" | "network", detail: string, goawayUri = ""): Promise<void> {
    const target = this.target;
    const broadcast = this.broadcast;
    if (this.reconnecting || this.stopping || !target || !broadcast) return;
    const policy = reconnectPolicy(this.options.reconnect);
    if (!policy) return this.failed(new PublishError("network", detail));
    this.reconnecting = true;
    this.setState("reconnecting");
    const backoff = new Backoff(policy);
    let goaway = goawayUri;
    try {
      for (;;) {
        const delayMs = backoff.next(cause === "goaway");
        if (delayMs === null) {
          return this.failed(new PublishError("network", `reconnecting failed after ${backoff.attempts} attempts: ${detail}`));
        }
        if (!goaway) target.index += 1;
        const url = reconnectUrl(target.urls, target.index, goaway);
        goaway = "";
        try {
          this.options.onReconnecting?.({ attempt: backoff.attempts, delayMs: Math.round(delayMs), cause, detail, url });
        } catch {
          // the application's callback threw
        }
        await sleep(delayMs, () => this.stopping);
        if (this.stopping) return;
        let session: MoqtSession | null = null;
        try {
          session = await this.connect(url, target.streamKey, Math.max(1000, Math.min(10000, backoff.left())));
          if (this.stopping) return session.close(0, "publisher stopped");
          if (this.leaving.has(session)) throw new PublishError("network", "the relay is going away (draining)");
          const old = this.session;
          broadcast.bind(session);
          const ns = await session.publishNamespace(target.namespace, { authToken: target.streamKey });
          if (this.stopping) return session.close(0, "publisher stopped");
          this.session = session;
          this.ns = ns;
          // The old session (a GOAWAY's, still up) is left open: closed before the new one
          // took the input over at the origin, the broadcast would end there. The origin
          // closes it at the takeover (it kicks the replaced publisher); an origin that does
          // not is left 5 s after media flows on the new session.
          if (old && old !== session && !old.isClosed) {
            const grace = broadcast.whenFlowing().then(() => new Promise((r) => setTimeout(r, 5000)));
            void Promise.race([old.closed, grace]).then(() => old.close(0, "moved to a new session"));
          }
          this.setState("live");
          // A GOAWAY that came during the setup: move on once this attempt is done.
          if (this.leaving.has(session)) setTimeout(() => void this.reconnect("goaway", "the relay is going away"), 0);
          return;
        } catch (e) {
          session?.close(0, "reconnect failed");
          const error = asPublishError(e);
          // A refused key is never retried; "already published" is (the relay may not have
          // noticed the old session's end yet).
          if (error.reason === "auth_failed" || error.reason === "not_found") return this.failed(error);
          if (this.stopping) return;
          detail = error.message;
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  private failed(e: PublishError): void {
    if (this.stopping) return;
    this.setState("failed");
    this.teardown(e.message);
    this.options.onError?.(e);
  }

  private teardown(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    const session = this.session;
    const broadcast = this.broadcast;
    const ns = this.ns;
    this.session = null;
    this.ns = null;
    if (!session) return;
    void (async () => {
      try {
        await broadcast?.stop();
        ns?.done();
      } catch {
        // the session may be gone already
      }
      try {
        session.close(0, reason.slice(0, 200));
      } catch {
        // already closed
      }
    })();
  }
}
