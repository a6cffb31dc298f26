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
 *    held `targetLatencyMs` behind the newest buffered media (default "low": 200 ms, down
 *    towards 130 ms while the arrival jitter allows, back up at once on a stall; "auto":
 *    the arrival jitter + 50 ms; or a fixed number)
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
 *
 * Modules: ./live_options.ts (the options), ./live_media.ts (the media side this class
 * extends: lanes into SourceBuffers, switches, start, stats), ./live_lane.ts (one track),
 * ./live_connect.ts (certificate hashes, namespaces, error mapping), ./catchup.ts.
 */
import { PlaybackError } from "./errors.js";
import { Lane } from "./live_lane.js";
import { asPlaybackError, certificateHashes, namespaceFor, reasonForClose, sameBytes } from "./live_connect.js";
import { LiveMedia } from "./live_media.js";
import type { LiveOptions } from "./live_options.js";
import { Backoff, reconnectUrl, sleep } from "./reconnect.js";
import { bufferedAhead } from "./mse.js";
import type { PlaybackHandle } from "./playback.js";
import { resolveToken } from "./token.js";
import { type Catalog, parseCatalog } from "../moqt/catalog.js";
import { MoqtSession, PublishDoneCode, RequestErrorCode, RequestRefused, SessionClosed, type Subscription } from "../moqt/session.js";

export type { PlaybackHandle } from "./playback.js";
export type { LiveOptions, LiveState } from "./live_options.js";

const TICK_MS = 200;
/** No media object for this long (or 6 objects' time) while playing: the session is taken for lost. */
const SILENT_MS = 8000;

class LivePlayer extends LiveMedia {
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
  protected async connect(url: string, setupTimeoutMs: number): Promise<MoqtSession> {
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

  protected moveOnGoaway(session: MoqtSession): void {
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
  protected lost(session: MoqtSession, detail: string, reason: PlaybackError["reason"]): void {
    if (session !== this.session || this.stopped) return;
    if (this.ending) return this.finishEnded();
    if (reason === "auth_failed" || !this.reporting) return this.fail(new PlaybackError(reason, detail));
    void this.reconnect("network", detail);
  }

  /** Reconnect with backoff (./reconnect.ts); `onError(network)` when the window is used up. */
  protected async reconnect(cause: "goaway" | "network", detail: string, sameRelay = false): Promise<void> {
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
  protected async rejoin(url: string, leftMs: number): Promise<void> {
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
  protected lanesFor(catalog: Catalog): [Lane, Lane | null] {
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

  protected async subscribeLane(lane: Lane, priority: number, session: MoqtSession, deadline: number, join = 0): Promise<void> {
    lane.since = performance.now();
    lane.sub = await this.subscribeRetrying(lane.track.name, priority, lane.track.namespace ?? this.namespace, join, session, deadline);
  }

  /** SUBSCRIBE with a joining FETCH; DOES_NOT_EXIST is retried until the start timeout
   * (or `deadline`: a reconnect's window, the publisher may be reconnecting too). */
  protected async subscribeRetrying(
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

  protected async firstCatalog(sub: Subscription): Promise<Catalog> {
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

  protected async readCatalog(sub: Subscription, session: MoqtSession): Promise<void> {
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
  protected refreshTracks(catalog: Catalog): void {
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

  protected onTrackDone(status: number | null, reason: string): void {
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


  protected tick(): void {
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
    // A gap (a skipped group, audio/video start skew, a hole between two appends): jump to
    // the next buffered range.
    this.jumpGap();
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
