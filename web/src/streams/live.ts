/**
 * Live playback over MoQT (draft-16, WebTransport) into Media Source Extensions.
 *
 * 1. Namespace `stream/<org>/<id>`: the org from the token's `ns` claim (or the relay
 *    URL's path, as in a signed URL `https://pop/stream/<org>/<id>?token=`).
 * 2. WebTransport to the relay (POP) with the token as CLIENT_SETUP's AUTHORIZATION
 *    TOKEN. A development relay (loopback / IP literal host) is pinned with
 *    `serverCertificateHashes`: given in the options, else read from the control
 *    plane's `GET /v1/relay/certificate` (at `apiBase`, the SDK script's origin, or the page's).
 * 3. `.catalog` first (LargestObject + a joining FETCH of its current group); then the
 *    video rendition the ABR picks and the first audio track, each from the current
 *    group's first object (a joining FETCH) into its own SourceBuffer, initialised from
 *    the catalog's `initData`.
 * 4. Playback starts as soon as the first frame of the joined group (the newest
 *    keyframe's) is buffered; objects are appended as they arrive. The playhead is then
 *    held `targetLatencyMs` (default 200 ms; "auto": the arrival jitter + 50 ms) behind the newest buffered media
 *    (./catchup.ts: 1.05-1.15x when behind, a seek when far behind).
 *    ABR (./abr.ts) switches at group boundaries.
 *
 * A lost session or a GOAWAY is reconnected (./reconnect.ts): the same MediaSource and
 * SourceBuffers, a new session (the GOAWAY's URI, else the relay URL and `fallbackUrls` in
 * turn), `.catalog` again, then each track from its current group; what was already
 * appended is skipped, so a GOAWAY's move is seamless and a network loss leaves a gap that
 * the player jumps. `onStateChange` says `reconnecting`, then `playing` again.
 *
 * Errors (`onError`, playback stopped): `auth_failed` (refused, expired or revoked token),
 * `not_found` (not live within `startTimeoutMs`), `network`, `unsupported`, `decode`.
 * The broadcast ending is `onEnded`, not an error. Failures before `playLive` resolves
 * reject it instead (the Viewer reports them).
 */
import { AbrController, type Rendition } from "./abr.js";
import { LiveEdgeController } from "./catchup.js";
import { Lane } from "./live_lane.js";
import { PlaybackError } from "./errors.js";
import { asPlaybackError, certificateHashes, namespaceFor, reasonForClose, sameBytes } from "./live_connect.js";
import { Backoff, type ReconnectInfo, type ReconnectOptions, reconnectPolicy, reconnectUrl, sleep } from "./reconnect.js";
import {
  AppendQueue,
  baseMediaDecodeTime,
  bufferedAhead,
  codecFromInit,
  mimeFor,
  openMediaSource,
  timescaleFromInit,
} from "./mse.js";
import type { PlaybackHandle } from "./playback.js";
import { resolveToken } from "./token.js";
import { type Catalog, type CatalogTrack, parseCatalog } from "../moqt/catalog.js";
import {
  MoqtSession,
  PublishDoneCode,
  RequestErrorCode,
  RequestRefused,
  SessionClosed,
  type Subscription,
} from "../moqt/session.js";

export type { PlaybackHandle } from "./playback.js";

export interface LiveOptions {
  video: HTMLVideoElement;
  relayUrl: string;
  id: string;
  token?: string;
  onStarted: () => void;
  onError: (e: PlaybackError) => void;
  onEnded: () => void;
  /** SHA-256 of the relay's certificate (hex or bytes) for a self-signed development relay. */
  serverCertificateHashes?: Array<string | Uint8Array>;
  /** Where the control plane is (for the certificate hash of a development relay). */
  apiBase?: string;
  /** How long to wait for the broadcast to be live (ms, default 20000). */
  startTimeoutMs?: number;
  /** How far behind the newest received media to play (ms, default 200), or "auto" (the
   * arrival jitter + 50 ms, 100 ms to 1 s); raised to one object's duration + 100 ms when
   * the publisher's objects are longer. */
  targetLatencyMs?: number | "auto";
  /** @deprecated seconds; use `targetLatencyMs`. */
  targetLatency?: number;
  /** Reconnect after a lost session or a GOAWAY (default: on, see ./reconnect.ts); `false`: never. */
  reconnect?: ReconnectOptions | false;
  /** Other relays (POPs) to try in turn when the one in use is lost (same token). */
  fallbackUrls?: string[];
  /** Before each reconnect attempt. */
  onReconnecting?: (info: ReconnectInfo) => void;
  /** `starting` -> `playing` <-> `reconnecting` -> `ended` | `failed` | `stopped`. */
  onStateChange?: (state: LiveState) => void;
}

/** The live player's state (`stats().state`, `onStateChange`). */
export type LiveState = "starting" | "playing" | "reconnecting" | "ending" | "ended" | "failed" | "stopped";

const TICK_MS = 200;
/** No media object for this long (or 6 objects' time) while playing: the session is taken for lost. */
const SILENT_MS = 8000;

class LivePlayer implements PlaybackHandle {
  private session: MoqtSession | null = null;
  private source: MediaSource | null = null;
  private objectUrl: string | null = null;
  private videoQueue: AppendQueue | null = null;
  private audioQueue: AppendQueue | null = null;
  private catalog: Catalog | null = null;
  private catalogGroup = -1;
  private video: Lane | null = null;
  private pending: Lane | null = null;
  private audio: Lane | null = null;
  private abr: AbrController | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private stopped = false;
  private started = false;
  private playing = false;
  private ending = false;
  private namespace = "";
  private readonly t0 = performance.now();
  private startupMs = -1;
  private bytes = 0;
  private objects = 0;
  private jumps = 0;
  private lastTrim = 0;
  private newestEnd = 0;
  private startGroup = -1;
  private audioStartGroup = -1;
  private readonly edge: LiveEdgeController;
  private lastPlayhead = -1;
  private rate = 1;
  private state: LiveState = "starting";
  private readonly policy: ReturnType<typeof reconnectPolicy>;
  private urls: string[] = [];
  private urlIndex = 0;
  private token: string | null = null;
  private goawayUri = "";
  private reconnecting = false;
  private reconnects = 0;
  private sessions = 0;
  private resumeBy = 0;
  /** When the last media object arrived (a silent session is taken for a lost one). */
  private lastObjectAt = 0;
  /** Sessions that got a GOAWAY (a draining relay answers new sessions with one). */
  private readonly leaving = new WeakSet<MoqtSession>();
  private readonly goawayUris = new WeakMap<MoqtSession, string>();

  constructor(private readonly opts: LiveOptions) {
    const ms = opts.targetLatencyMs ?? (opts.targetLatency !== undefined ? opts.targetLatency * 1000 : undefined);
    try {
      this.edge = new LiveEdgeController(ms === undefined ? {} : { targetMs: ms });
    } catch (e) {
      throw new PlaybackError("unsupported", e instanceof Error ? e.message : String(e));
    }
    try {
      this.policy = reconnectPolicy(opts.reconnect);
    } catch (e) {
      throw new PlaybackError("unsupported", e instanceof Error ? e.message : String(e));
    }
  }

  private setState(state: LiveState): void {
    if (this.state === state || this.state === "stopped" || this.state === "failed" || this.state === "ended") return;
    this.state = state;
    try {
      this.opts.onStateChange?.(state);
    } catch {
      // the application's callback threw: not playback's failure
    }
  }

  async start(): Promise<void> {
    const opts = this.opts;
    if (typeof MediaSource === "undefined") throw new PlaybackError("unsupported", "this browser has no Media Source Extensions");
    if (typeof WebTransport === "undefined") throw new PlaybackError("unsupported", "this browser has no WebTransport");
    let relay: URL;
    try {
      relay = new URL(opts.relayUrl);
    } catch {
      throw new PlaybackError("network", `bad relay URL ${opts.relayUrl}`);
    }
    const token = resolveToken(opts.token ?? relay.searchParams.get("token"));
    this.token = token;
    this.namespace = namespaceFor(opts.id, token, relay);
    this.urls = [relay.href, ...(opts.fallbackUrls ?? [])];
    const session = await this.connect(relay.href, 10000);
    if (this.stopped) return session.close(0, "stopped");
    this.session = session;
    const sub = await this.subscribeRetrying(".catalog", 0);
    const first = await this.firstCatalog(sub);
    this.begin(first);
    void this.readCatalog(sub, session);
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** A MoQT session to `url` (the certificate hash looked up again: it may have been renewed). */
  private async connect(url: string, setupTimeoutMs: number): Promise<MoqtSession> {
    const hashes = await certificateHashes(this.opts, new URL(url));
    const connect: Parameters<typeof MoqtSession.connect>[1] = { implementation: "clutchcall-web-viewer", setupTimeoutMs };
    if (this.token) connect.token = this.token;
    if (hashes.length) connect.serverCertificateHashes = hashes;
    const session = await MoqtSession.connect(url, connect);
    this.sessions += 1;
    session.closed.then((info) => this.lost(session, info.reason || "the relay closed the session", reasonForClose(info)));
    session.onGoaway = (uri) => {
      this.leaving.add(session);
      try {
        this.goawayUris.set(session, uri ? new URL(uri, url).href : "");
      } catch {
        this.goawayUris.set(session, "");
      }
      // While starting, the old session still serves: the move comes once playing (started()).
      if (session === this.session && !this.stopped && this.reporting) this.moveOnGoaway(session);
    };
    return session;
  }

  private moveOnGoaway(session: MoqtSession): void {
    const uri = this.goawayUris.get(session) ?? "";
    this.goawayUri = uri;
    void this.reconnect("goaway", `the relay is going away${uri ? ` (to ${uri})` : ""}`);
  }

  /** playLive resolved: failures are reported from now on; a GOAWAY that came while
   * starting is acted on now. */
  markStarted(): void {
    this.reporting = true;
    const session = this.session;
    if (session && this.leaving.has(session)) this.moveOnGoaway(session);
  }

  /** The session in use ended (not by us): the broadcast's end, an auth failure, or a reconnect. */
  private lost(session: MoqtSession, detail: string, reason: PlaybackError["reason"]): void {
    if (session !== this.session || this.stopped) return;
    if (this.ending) return this.finishEnded();
    if (reason === "auth_failed" || !this.reporting) return this.fail(new PlaybackError(reason, detail));
    void this.reconnect("network", detail);
  }

  /** Reconnect with backoff (./reconnect.ts); `onError(network)` when the window is used up. */
  private async reconnect(cause: "goaway" | "network", detail: string, sameRelay = false): Promise<void> {
    if (this.reconnecting || this.stopped || this.ending) return;
    if (!this.policy) return this.fail(new PlaybackError("network", detail));
    this.reconnecting = true;
    this.setState("reconnecting");
    const backoff = new Backoff(this.policy);
    let goaway = cause === "goaway" ? this.goawayUri : "";
    this.goawayUri = "";
    try {
      for (;;) {
        const delayMs = backoff.next(cause === "goaway");
        if (delayMs === null) {
          return this.fail(new PlaybackError("network", `reconnecting failed after ${backoff.attempts} attempts: ${detail}`));
        }
        // A lost session tries the next relay; a track that moved, the same one first.
        if (!goaway && !(sameRelay && backoff.attempts === 1)) this.urlIndex += 1;
        const url = reconnectUrl(this.urls, this.urlIndex, goaway);
        goaway = "";
        try {
          this.opts.onReconnecting?.({ attempt: backoff.attempts, delayMs: Math.round(delayMs), cause, detail, url });
        } catch {
          // the application's callback threw
        }
        await sleep(delayMs, () => this.stopped || this.ending);
        if (this.stopped || this.ending) return;
        try {
          await this.rejoin(url, backoff.left());
          this.reconnects += 1;
          this.lastObjectAt = performance.now();
          // Subscribed: media must follow within the window (else the publisher is gone).
          this.resumeBy = performance.now() + Math.max(5000, backoff.left());
          return;
        } catch (e) {
          const error = asPlaybackError(e);
          if (error.reason === "auth_failed") return this.fail(error); // never retried
          if (this.stopped || this.ending) return;
          detail = error.message;
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  /** One reconnect attempt: a new session, `.catalog`, the tracks from their current group
   * (skipping what was already appended); then the old session is closed. */
  private async rejoin(url: string, leftMs: number): Promise<void> {
    const session = await this.connect(url, Math.max(1000, Math.min(10000, leftMs)));
    const old = this.session;
    let swapped = false;
    try {
      if (this.stopped || this.ending) throw new PlaybackError("network", "stopped");
      const deadline = performance.now() + Math.max(1000, leftMs);
      const sub = await this.subscribeRetrying(".catalog", 0, undefined, 0, session, deadline);
      const catalog = await within(this.firstCatalog(sub), deadline - performance.now(), "no catalog from the new session");
      if (this.stopped || this.ending) throw new PlaybackError("network", "stopped");
      const [video, audio] = this.lanesFor(catalog);
      // Both subscribed before the swap (the old session may still deliver meanwhile: a GOAWAY).
      const subs = await Promise.allSettled([
        this.subscribeLane(video, 1, session, deadline),
        audio ? this.subscribeLane(audio, 0, session, deadline, 1) : Promise.resolve(),
      ]);
      for (const r of subs) if (r.status === "rejected") throw r.reason;
      if (this.stopped || this.ending) throw new PlaybackError("network", "stopped");
      if (this.leaving.has(session)) throw new PlaybackError("network", "the relay is going away (draining)");
      this.catalog = catalog;
      this.abandonPending();
      this.video?.sub?.unsubscribe();
      this.audio?.sub?.unsubscribe();
      this.session = session;
      swapped = true;
      this.video = video;
      this.audio = audio;
      void this.readCatalog(sub, session);
      void this.pump(video);
      if (audio) void this.pump(audio);
      const now = performance.now();
      this.drain(video, now);
      if (audio) this.drain(audio, now);
      this.awaitFrame(() => {
        this.resumeBy = 0;
        this.setState("playing");
      });
    } finally {
      if (!swapped) session.close(0, "reconnect abandoned");
      else if (old && old !== session) old.close(0, "moved to a new session");
    }
  }

  /** Lanes for the tracks of a new session's catalog: the rendition in use (else the ABR's
   * best), the audio track of the same name; each skips what its predecessor appended. */
  private lanesFor(catalog: Catalog): [Lane, Lane | null] {
    if (!catalog.videos.length) throw new PlaybackError("decode", "the catalog lists no playable video track");
    const prev = this.video;
    const name = prev?.track.name;
    const vtrack = catalog.videos.find((t) => t.name === name) ?? catalog.videos[0]!;
    if (vtrack.name !== name) {
      this.abr?.pin(null);
      if (this.abr?.renditions.some((r) => r.name === vtrack.name)) this.abr.switched(vtrack.name, performance.now());
    }
    const video = new Lane("video", vtrack);
    const prevAudio = this.audio;
    const atrack = prevAudio ? (catalog.audios.find((t) => t.name === prevAudio.track.name) ?? catalog.audios[0]) : undefined;
    const audio = atrack && prevAudio ? new Lane("audio", atrack) : null;
    for (const [lane, before] of [[video, prev], [audio, prevAudio]] as const) {
      if (!lane || !before) continue;
      lane.resumeAfter = before.last;
      if (lane.track.initData && !sameBytes(lane.track.initData, before.track.initData)) lane.freshInit = lane.track;
      else lane.track = before.track;
    }
    return [video, audio];
  }

  private async subscribeLane(lane: Lane, priority: number, session: MoqtSession, deadline: number, join = 0): Promise<void> {
    lane.since = performance.now();
    lane.sub = await this.subscribeRetrying(lane.track.name, priority, lane.track.namespace ?? this.namespace, join, session, deadline);
  }

  /** SUBSCRIBE with a joining FETCH; DOES_NOT_EXIST is retried until the start timeout
   * (or `deadline`: a reconnect's window, the publisher may be reconnecting too). */
  private async subscribeRetrying(
    name: string,
    priority: number,
    namespace?: string,
    join = 0,
    on?: MoqtSession,
    until?: number,
  ): Promise<Subscription> {
    const deadline = until ?? performance.now() + (this.opts.startTimeoutMs ?? 20000);
    for (;;) {
      const session = on ?? (this.session as MoqtSession);
      try {
        return await session.subscribe(namespace ?? this.namespace, name, { join, priority });
      } catch (e) {
        if (!(e instanceof RequestRefused) || e.code !== RequestErrorCode.DOES_NOT_EXIST) throw e;
        if (performance.now() > deadline || this.stopped) {
          throw new PlaybackError("not_found", `${this.namespace} is not live`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private async firstCatalog(sub: Subscription): Promise<Catalog> {
    const it = sub[Symbol.asyncIterator]();
    for (;;) {
      const { value, done } = await it.next();
      if (done) throw new PlaybackError("not_found", "the broadcast ended before its catalog arrived");
      if (value.type !== "object" || !value.payload.length) continue;
      this.catalogGroup = value.group;
      const catalog = parseCatalog(value.payload);
      if (!catalog.videos.length) throw new PlaybackError("decode", "the catalog lists no playable video track");
      return catalog;
    }
  }

  private async readCatalog(sub: Subscription, session: MoqtSession): Promise<void> {
    try {
      for await (const item of sub) {
        if (session !== this.session) return; // replaced by a reconnect
        if (item.type !== "object" || item.group <= this.catalogGroup || !item.payload.length) continue;
        this.catalogGroup = item.group;
        const catalog = parseCatalog(item.payload);
        this.catalog = catalog;
        if (catalog.isComplete || !catalog.videos.some((t) => t.isLive)) this.endSoon();
        else this.refreshTracks(catalog);
      }
      const done = await sub.ended;
      if (session === this.session) this.onTrackDone(done.statusCode, done.reason);
    } catch (e) {
      if (!(e instanceof SessionClosed) && session === this.session) this.fail(asPlaybackError(e, "decode"));
    }
  }

  /** A new catalog: changed init segments apply at the lanes' next group; a rendition that
   * left the ladder is replaced by the best one still listed. */
  private refreshTracks(catalog: Catalog): void {
    for (const lane of [this.video, this.audio, this.pending]) {
      if (!lane) continue;
      const fresh = catalog.tracks.find((t) => t.name === lane.track.name && t.namespace === lane.track.namespace);
      if (fresh?.initData && !sameBytes(fresh.initData, lane.track.initData)) lane.freshInit = fresh;
    }
    const playing = this.video?.track.name;
    const best = catalog.videos[0];
    if (playing && best && !catalog.videos.some((t) => t.name === playing)) {
      this.abr?.pin(null);
      this.switchTo(best.name);
    }
  }

  private onTrackDone(status: number | null, reason: string): void {
    if (this.stopped) return;
    if (status === PublishDoneCode.UNAUTHORIZED || status === PublishDoneCode.EXPIRED) {
      this.fail(new PlaybackError("auth_failed", reason || "the playback token is no longer valid"));
    } else if (status === PublishDoneCode.MALFORMED_TRACK) {
      this.fail(new PlaybackError("decode", reason || "the publisher sent a malformed track"));
    } else if (status === PublishDoneCode.TRACK_ENDED || status === PublishDoneCode.SUBSCRIPTION_ENDED) {
      this.endSoon();
    } else if (status === PublishDoneCode.GOING_AWAY || status === PublishDoneCode.TOO_FAR_BEHIND) {
      // The track goes on elsewhere or later: reconnect (resumes at the live edge).
      void this.reconnect("network", reason || `the relay ended the subscription (${status})`, true);
    } else if (status !== null) {
      this.fail(new PlaybackError("network", reason || `the relay ended the subscription (${status})`));
    }
  }

  private begin(catalog: Catalog): void {
    this.catalog = catalog;
    const ladder: Rendition[] = catalog.videos.map((t) => ({ name: t.name, bitrate: t.bitrate, width: t.width, height: t.height }));
    const nav = navigator as Navigator & { connection?: { downlink?: number } };
    const downlink = nav.connection?.downlink;
    const px = Math.max(this.opts.video.clientHeight || 0, 360) * (globalThis.devicePixelRatio || 1);
    const options: ConstructorParameters<typeof AbrController>[1] = { maxHeight: Math.max(px, 360) };
    if (downlink) options.startBitrate = downlink * 1e6 * 0.8;
    this.abr = new AbrController(ladder, options);
    const track = catalog.videos.find((t) => t.name === this.abr?.current) as CatalogTrack;
    this.video = new Lane("video", track);
    const audio = catalog.audios.find((t) => {
      try {
        return MediaSource.isTypeSupported(mimeFor("audio", t.codec ?? codecFromInit(t.initData as Uint8Array)));
      } catch {
        return false;
      }
    });
    if (audio) this.audio = new Lane("audio", audio);
  }

  /** MediaSource + SourceBuffers (after the catalog, before the first append). */
  async setupMedia(): Promise<void> {
    const video = this.opts.video;
    const { source, url } = await openMediaSource(video);
    this.source = source;
    this.objectUrl = url;
    // A live MediaSource (duration +Infinity): Chromium then renders with low delay (no
    // waiting for several decoded frames before presenting one).
    try {
      source.duration = Number.POSITIVE_INFINITY;
    } catch {
      // not settable here: plays, with the default rendering delay
    }
    const v = this.video as Lane;
    const vtype = mimeFor("video", v.track.codec ?? codecFromInit(v.track.initData as Uint8Array));
    if (!MediaSource.isTypeSupported(vtype)) throw new PlaybackError("unsupported", `cannot play ${vtype}`);
    this.videoQueue = new AppendQueue(source.addSourceBuffer(vtype), video);
    void this.videoQueue.append(v.track.initData as Uint8Array).catch((e: unknown) => this.fail(asPlaybackError(e, "decode")));
    if (this.audio) {
      const a = this.audio.track;
      this.audioQueue = new AppendQueue(source.addSourceBuffer(mimeFor("audio", a.codec ?? codecFromInit(a.initData as Uint8Array))), video);
      void this.audioQueue.append(a.initData as Uint8Array).catch((e: unknown) => this.fail(asPlaybackError(e, "decode")));
    }
  }

  /** Video and audio are subscribed together (one round trip). Audio joins one group
   * further back: were its current group already the next one (a group boundary passed
   * between the two subscriptions), the video's first group would have no sound, so
   * playback (the audio/video intersection) could only begin a whole group later. */
  async subscribeLanes(): Promise<void> {
    const v = this.video as Lane;
    const audio = this.audio;
    const sound = audio
      ? this.attach(audio, 0, false, 1).catch((e: unknown) => {
          if (e instanceof RequestRefused) this.audio = null; // play without sound rather than not at all
          else throw e;
        })
      : Promise.resolve();
    // Both settle before either failure is thrown (no unhandled rejection).
    const [video, sounded] = await Promise.allSettled([this.attach(v, 1), sound]);
    if (video.status === "rejected") throw video.reason;
    if (sounded.status === "rejected") throw sounded.reason;
  }

  private async attach(lane: Lane, priority: number, next = false, join = 0): Promise<void> {
    const session = this.session as MoqtSession;
    const ns = lane.track.namespace ?? this.namespace;
    lane.since = performance.now();
    lane.sub = next
      ? await session.subscribe(ns, lane.track.name, { priority })
      : await this.subscribeRetrying(lane.track.name, priority, ns, join);
    void this.pump(lane);
  }

  private async pump(lane: Lane): Promise<void> {
    const sub = lane.sub as Subscription;
    try {
      for await (const item of sub) {
        if (this.stopped) return;
        const now = performance.now();
        if (item.type === "object") {
          if (lane === this.video || lane === this.audio) this.lastObjectAt = now;
          this.bytes += item.payload.length;
          this.objects += 1;
          if (lane.kind === "video") this.abr?.received(item.payload.length, now);
          lane.seq.push({ group: item.group, object: item.object, payload: item.payload, arrived: now });
          if (item.status !== 0) lane.seq.end(item.group);
          lane.arrived(item.group, item.fetched);
        } else if (item.type === "end") {
          lane.seq.end(item.group);
          if (item.reset && lane.kind === "video") this.abr?.lost(now);
        } else if (item.type === "fetchDone") {
          lane.fetchComplete();
        }
        this.drain(lane, now);
      }
      const done = await sub.ended;
      if (lane === this.video || lane === this.audio) this.onTrackDone(done.statusCode, done.reason);
    } catch (e) {
      if (!(e instanceof SessionClosed) && (lane === this.video || lane === this.audio)) this.fail(asPlaybackError(e, "decode"));
    }
  }

  private drain(lane: Lane, now: number): void {
    if (lane === this.pending) this.maybeCutOver(now);
    if (lane === this.audio) {
      for (const obj of lane.seq.poll(now)) {
        if (this.repeated(lane, this.audioQueue, obj)) continue;
        if (this.audioStartGroup < 0) this.audioStartGroup = obj.group;
        if (obj.object === 0) this.reinit(lane, this.audioQueue, "audio");
        this.append(this.audioQueue, obj.payload);
        lane.last = { group: obj.group, object: obj.object };
      }
      return;
    }
    if (lane !== this.video) return;
    const skippedBefore = lane.seq.skipped;
    for (const obj of lane.seq.poll(now)) {
      if (this.repeated(lane, this.videoQueue, obj)) continue;
      if (this.startGroup < 0) this.startGroup = obj.group;
      if (obj.object === 0) this.reinit(lane, this.videoQueue, "video");
      this.append(this.videoQueue, obj.payload, true);
      lane.last = { group: obj.group, object: obj.object };
      if (this.pending) this.maybeCutOver(now);
      if (lane !== this.video) return this.drain(this.video as Lane, now);
    }
    if (lane.seq.skipped > skippedBefore) this.abr?.lost(now);
    if (this.pending) this.maybeCutOver(now);
  }

  /** After a reconnect, what the new lane repeats of what its predecessor appended: the same
   * group and object ids, or (another numbering) media older than the buffer's end, which
   * appended again would replace buffered frames. The first newer object ends the check. */
  private repeated(lane: Lane, queue: AppendQueue | null, obj: { group: number; object: number; payload: Uint8Array }): boolean {
    if (!lane.resumeAfter) return false;
    if (lane.repeats(obj.group, obj.object)) return true;
    try {
      const b = queue?.buffer.buffered;
      if (b?.length && lane.track.initData) {
        const t = baseMediaDecodeTime(obj.payload) / timescaleFromInit(lane.track.initData);
        if (t < b.end(b.length - 1) - 0.05) return true;
      }
    } catch {
      // not a parsable fragment: let the append decide
    }
    lane.resumeAfter = null;
    return false;
  }

  /** Apply a changed init segment before a group's first object. */
  private reinit(lane: Lane, queue: AppendQueue | null, kind: "video" | "audio"): void {
    const fresh = lane.freshInit;
    if (!fresh?.initData || !queue) return;
    lane.freshInit = null;
    lane.track = fresh;
    void queue.changeType(mimeFor(kind, fresh.codec ?? codecFromInit(fresh.initData)));
    this.append(queue, fresh.initData);
  }

  private append(queue: AppendQueue | null, payload: Uint8Array, media = false): void {
    if (!queue || this.stopped) return;
    queue
      .append(payload)
      .then(() => {
        const b = this.opts.video.buffered;
        if (!b.length || this.stopped) return;
        const end = b.end(b.length - 1);
        if (media && this.newestEnd > 0 && end > this.newestEnd) this.edge.observeAppend(end - this.newestEnd);
        if (media && end > this.newestEnd) this.edge.observeArrival(end, performance.now() / 1000);
        this.newestEnd = Math.max(this.newestEnd, end);
        // Start on the first buffered frame, not on the next tick.
        if (!this.playing) this.startIfReady();
      })
      .catch((e: unknown) => this.fail(asPlaybackError(e, "decode")));
  }

  /** Switch to the pending rendition at its first group, once the current one has played up to it. */
  private maybeCutOver(now: number): void {
    const next = this.pending;
    const cur = this.video;
    if (!next || !cur) return;
    const first = next.seq.firstStartable();
    const at = cur.seq.group;
    if (first === null) {
      // Nothing to switch to yet; do not hold the current rendition back for long.
      const holding = cur.seq.currentDone() && now - next.since > 3000;
      if (holding || now - next.since > 8000) this.abandonPending();
      return;
    }
    if (at !== null && at >= first) {
      next.seq.raiseMin(at + 1);
      cur.seq.stopBefore = at + 1;
      return;
    }
    // The current rendition plays up to the group before `first`, then hands over.
    cur.seq.stopBefore = first;
    const caughtUp = at === first - 1 && cur.seq.currentDone();
    const waited = now - next.since;
    const stuck = (waited > 6000 && (at === null || at === first - 1)) || waited > 12000;
    if (at !== null && !caughtUp && !stuck) return;
    this.pending = null;
    cur.sub?.unsubscribe();
    this.video = next;
    const init = next.track.initData as Uint8Array;
    const queue = this.videoQueue as AppendQueue;
    void queue.changeType(mimeFor("video", next.track.codec ?? codecFromInit(init)));
    this.append(queue, init);
    this.abr?.switched(next.track.name, now);
  }

  private abandonPending(): void {
    this.pending?.sub?.unsubscribe();
    this.pending = null;
    if (this.video) this.video.seq.stopBefore = Number.POSITIVE_INFINITY;
  }

  private switchTo(name: string): void {
    const cur = this.video;
    const track = this.catalog?.videos.find((t) => t.name === name);
    if (!cur || !track || this.ending || this.stopped || this.reconnecting) return;
    if (this.pending) {
      if (this.pending.track.name === name) return;
      this.abandonPending();
    }
    if (name === cur.track.name) return;
    const lane = new Lane("video", track, (cur.seq.group ?? 0) + 1);
    this.pending = lane;
    // The current rendition finishes its group and waits there for the new one's next group.
    cur.seq.stopBefore = lane.seq.minGroup;
    this.attach(lane, 1, true).catch(() => {
      if (this.pending === lane) this.pending = null;
    });
  }

  private tick(): void {
    if (this.stopped) return;
    const video = this.opts.video;
    const now = performance.now();
    for (const lane of [this.video, this.audio, this.pending]) if (lane) this.drain(lane, now);
    if (this.resumeBy && !this.reconnecting && now > this.resumeBy) {
      return this.fail(new PlaybackError("network", "reconnected, but no media arrived"));
    }
    // No media for a while on a session that looks open (a relay that died without a word
    // is only noticed by the transport's idle timeout): reconnect.
    const silentMs = now - this.lastObjectAt;
    if (this.started && this.policy && !this.reconnecting && !this.ending && !this.resumeBy && this.lastObjectAt > 0) {
      if (silentMs > Math.max(SILENT_MS, 6000 * this.edge.span)) void this.reconnect("network", `no media for ${Math.round(silentMs / 1000)} s`);
    }
    if (!this.playing) {
      this.startIfReady();
      return;
    }
    const b = video.buffered;
    if (!b.length) return;
    const end = b.end(b.length - 1);
    const ahead = bufferedAhead(b, video.currentTime);
    // A gap (a skipped group, audio/video start skew): jump to the next buffered range.
    if (ahead === 0) {
      for (let i = 0; i < b.length; i++) {
        if (b.start(i) > video.currentTime) {
          video.currentTime = b.start(i);
          this.jumps += 1;
          break;
        }
      }
    }
    const latency = end - video.currentTime;
    // Paused by the user: left alone; once playing again, back to the live edge.
    if (!video.paused) {
      const action = this.edge.decide(latency, end);
      if (action.seekTo !== null) {
        video.currentTime = action.seekTo;
        this.jumps += 1;
      }
      if (action.rate !== this.rate) {
        this.rate = action.rate;
        video.playbackRate = action.rate;
      }
    }
    // Stalled: playing, yet the playhead has not moved since the last tick (a buffer that
    // is merely short between two appends is not a stall).
    const stalled = !video.paused && video.readyState < 3 && video.currentTime === this.lastPlayhead;
    this.lastPlayhead = video.currentTime;
    if (now - this.lastTrim > 5000 && video.currentTime > 30) {
      this.lastTrim = now;
      void this.videoQueue?.remove(0, video.currentTime - 20);
      void this.audioQueue?.remove(0, video.currentTime - 20);
    }
    if (this.abr && this.started && !this.reconnecting) {
      const choice = this.abr.decide({ now, bufferAhead: ahead, latency, stalled });
      if (choice !== (this.pending?.track.name ?? this.video?.track.name)) this.switchTo(choice);
    }
    if (this.ending && ahead < 0.25) this.finishEnded();
  }

  /** Begin playback at the start of the newest buffered range (the joined group's keyframe). */
  private startIfReady(): void {
    const video = this.opts.video;
    const b = video.buffered;
    if (this.playing || this.stopped || !b.length) return;
    this.playing = true;
    video.currentTime = b.start(b.length - 1);
    this.play();
  }

  private play(): void {
    const video = this.opts.video;
    video.play().catch((e: unknown) => {
      if (e instanceof DOMException && e.name === "NotAllowedError" && !video.muted) {
        video.muted = true; // autoplay with sound refused: play muted
        video.play().catch(() => undefined);
      }
    });
    if (!this.started) {
      this.awaitFrame(() => {
        if (this.started) return;
        this.started = true;
        this.startupMs = performance.now() - this.t0;
        this.setState("playing");
        this.opts.onStarted();
      });
    }
  }

  /** `then` at the next presented frame. */
  private awaitFrame(then: () => void): void {
    const video = this.opts.video;
    const onFrame = (): void => {
      if (!this.stopped) then();
    };
    if (typeof video.requestVideoFrameCallback === "function") video.requestVideoFrameCallback(onFrame);
    else video.addEventListener("playing", onFrame, { once: true });
  }

  private endSoon(): void {
    if (this.ending || this.stopped) return;
    this.ending = true;
    this.setState("ending");
  }

  private finishEnded(): void {
    if (this.stopped) return;
    const cb = this.opts.onEnded;
    this.setState("ended");
    this.release();
    cb();
  }

  /** Set once playLive resolved: later failures go to onError (earlier ones reject it). */
  reporting = false;

  fail(error: PlaybackError): void {
    if (this.stopped) return;
    if (this.reporting) this.setState("failed");
    this.release();
    if (this.reporting) this.opts.onError(error);
  }

  private release(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.session?.close(0, "viewer stopped");
    try {
      if (this.source?.readyState === "open") this.source.endOfStream();
    } catch {
      // the MediaSource is closing
    }
  }

  stop(): void {
    this.setState("stopped");
    this.release();
    const video = this.opts.video;
    video.pause();
    if (this.objectUrl) {
      video.removeAttribute("src");
      video.load();
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
    }
  }

  stats(): Record<string, number | string> {
    const video = this.opts.video;
    const b = video.buffered;
    const q = video.getVideoPlaybackQuality?.();
    const track = this.video?.track;
    return {
      rendition: track?.name ?? "",
      width: track?.width ?? 0,
      height: track?.height ?? 0,
      bitrate: track?.bitrate ?? 0,
      switches: this.abr?.switches ?? 0,
      pending: this.pending?.track.name ?? "",
      currentTime: video.currentTime,
      bufferedAhead: b.length ? bufferedAhead(b, video.currentTime) : 0,
      latency: b.length ? b.end(b.length - 1) - video.currentTime : 0,
      targetLatencyMs: Math.round(this.edge.target * 1000),
      jitterMs: Math.round((this.edge.jitter ?? -0.001) * 1000),
      playbackRate: video.playbackRate,
      throughputKbps: Math.round((this.abr?.throughput(performance.now()) ?? 0) / 1000),
      bytes: this.bytes,
      objects: this.objects,
      group: this.video?.seq.group ?? -1,
      skippedGroups: (this.video?.seq.skipped ?? 0) + (this.audio?.seq.skipped ?? 0),
      skippedAudio: this.audio?.seq.skipped ?? 0,
      startGroup: this.startGroup,
      audioStartGroup: this.audioStartGroup,
      lateObjects: (this.video?.seq.late ?? 0) + (this.audio?.seq.late ?? 0),
      jumps: this.jumps,
      startupMs: Math.round(this.startupMs),
      decodedFrames: q?.totalVideoFrames ?? 0,
      droppedFrames: q?.droppedVideoFrames ?? 0,
      namespace: this.namespace,
      state: this.stopped ? "stopped" : this.state, // onStateChange tells ended / failed
      reconnects: this.reconnects,
      sessions: this.sessions,
    };
  }

  setRendition(name: string): void {
    if (!this.abr) return;
    if (name !== "auto" && !this.abr.renditions.some((r) => r.name === name)) {
      throw new RangeError(`no rendition ${name} (have ${this.renditions().join(", ")})`);
    }
    this.abr.pin(name);
    if (name !== "auto") this.switchTo(name);
  }

  renditions(): string[] {
    return (this.catalog?.videos ?? []).map((t) => t.name);
  }
}

/** `promise`, or a network PlaybackError after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PlaybackError("network", what)), Math.max(0, ms));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Play the live broadcast `opts.id` from `opts.relayUrl`; resolves once the tracks are subscribed. */
export async function playLive(opts: LiveOptions): Promise<PlaybackHandle> {
  const player = new LivePlayer(opts);
  try {
    await player.start();
    await player.setupMedia();
    await player.subscribeLanes();
  } catch (e) {
    player.stop();
    throw asPlaybackError(e);
  }
  player.markStarted();
  return player;
}
