/**
 * The media side of the live player (./live.ts): the lanes' objects into the MediaSource's
 * SourceBuffers (in order, skipping what a reconnect repeats, init changes at group starts),
 * rendition switches at group boundaries, start on the first buffered frame, the stall
 * signal for the live-edge target (./catchup.ts), stop and stats. The session side
 * (connect, catalog, reconnect, the live-edge tick) is ./live.ts, which extends this.
 */
import { AbrController, type Rendition } from "./abr.js";
import { LiveEdgeController } from "./catchup.js";
import { Lane, type MediaAt, objectSpan } from "./live_lane.js";
import { PlaybackError } from "./errors.js";
import { asPlaybackError } from "./live_connect.js";
import type { LiveOptions, LiveState } from "./live_options.js";
import { reconnectPolicy } from "./reconnect.js";
import { AppendQueue, bufferedAhead, codecFromInit, holeAhead, mimeFor, openMediaSource } from "./mse.js";
import type { PlaybackHandle } from "./playback.js";
import type { Catalog, CatalogTrack } from "../moqt/catalog.js";
import { type MoqtSession, RequestRefused, SessionClosed, type Subscription } from "../moqt/session.js";

export abstract class LiveMedia implements PlaybackHandle {
  protected session: MoqtSession | null = null;
  protected source: MediaSource | null = null;
  protected objectUrl: string | null = null;
  protected videoQueue: AppendQueue | null = null;
  protected audioQueue: AppendQueue | null = null;
  protected catalog: Catalog | null = null;
  protected catalogGroup = -1;
  protected video: Lane | null = null;
  protected pending: Lane | null = null;
  protected audio: Lane | null = null;
  protected abr: AbrController | null = null;
  protected timer: ReturnType<typeof setInterval> | null = null;
  protected stopped = false;
  protected started = false;
  protected playing = false;
  protected ending = false;
  protected namespace = "";
  protected readonly t0 = performance.now();
  protected startupMs = -1;
  protected bytes = 0;
  protected objects = 0;
  protected jumps = 0;
  protected lastTrim = 0;
  protected newestEnd = 0;
  /** The newest appended video object: its location and media time (s; its tfdt). */
  private lastMedia: MediaAt | null = null;
  /** The last video group ends: ms the next group's keyframe had waited for each (0: none). */
  private readonly handovers: number[] = [];
  protected startGroup = -1;
  protected audioStartGroup = -1;
  protected readonly edge: LiveEdgeController;
  protected lastPlayhead = -1;
  protected rate = 1;
  protected state: LiveState = "starting";
  protected readonly policy: ReturnType<typeof reconnectPolicy>;
  protected urls: string[] = [];
  protected urlIndex = 0;
  protected token: string | null = null;
  protected goawayUri = "";
  protected reconnecting = false;
  protected reconnects = 0;
  protected sessions = 0;
  protected resumeBy = 0;
  /** When the last media object arrived (a silent session is taken for a lost one). */
  protected lastObjectAt = 0;
  /** Sessions that got a GOAWAY (a draining relay answers new sessions with one). */
  protected readonly leaving = new WeakSet<MoqtSession>();
  protected readonly goawayUris = new WeakMap<MoqtSession, string>();

  constructor(protected readonly opts: LiveOptions) {
    const ms = opts.targetLatencyMs ?? (opts.targetLatency !== undefined ? opts.targetLatency * 1000 : undefined);
    try {
      this.edge = new LiveEdgeController({
        ...(ms === undefined ? {} : { targetMs: ms }),
        ...(opts.floorLatencyMs === undefined ? {} : { floorMs: opts.floorLatencyMs }),
      });
    } catch (e) {
      throw new PlaybackError("unsupported", e instanceof Error ? e.message : String(e));
    }
    try {
      this.policy = reconnectPolicy(opts.reconnect);
    } catch (e) {
      throw new PlaybackError("unsupported", e instanceof Error ? e.message : String(e));
    }
  }

  protected setState(state: LiveState): void {
    if (this.state === state || this.state === "stopped" || this.state === "failed" || this.state === "ended") return;
    this.state = state;
    try {
      this.opts.onStateChange?.(state);
    } catch {
      // the application's callback threw: not playback's failure
    }
  }

  /** SUBSCRIBE (with a joining FETCH when `join`), retried while the track does not exist yet. */
  protected abstract subscribeRetrying(name: string, priority: number, namespace?: string, join?: number, on?: MoqtSession, until?: number): Promise<Subscription>;
  /** A track's subscription ended (PUBLISH_DONE status and reason). */
  protected abstract onTrackDone(status: number | null, reason: string): void;

  protected begin(catalog: Catalog): void {
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
    video.addEventListener("waiting", this.onWaiting);
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

  protected async attach(lane: Lane, priority: number, next = false, join = 0): Promise<void> {
    const session = this.session as MoqtSession;
    const ns = lane.track.namespace ?? this.namespace;
    lane.since = performance.now();
    lane.sub = next
      ? await session.subscribe(ns, lane.track.name, { priority })
      : await this.subscribeRetrying(lane.track.name, priority, ns, join);
    void this.pump(lane);
  }

  protected async pump(lane: Lane): Promise<void> {
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
          lane.noteArrival(item.group, item.object, now, item.payload);
          lane.seq.push({ group: item.group, object: item.object, payload: item.payload, arrived: now });
          if (item.status !== 0) lane.seq.end(item.group);
          lane.arrived(item.group, item.fetched);
        } else if (item.type === "end") {
          if (lane.kind === "video") {
            this.handovers.push(lane.groupEnded(item.group, now));
            if (this.handovers.length > 100) this.handovers.shift();
          }
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

  protected drain(lane: Lane, now: number): void {
    if (lane === this.pending) this.maybeCutOver(now);
    lane.impliedEnd(now);
    if (lane === this.audio) {
      for (const obj of lane.seq.poll(now)) {
        if (lane.repeated(obj, this.audioQueue?.buffer.buffered)) continue;
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
      if (lane.repeated(obj, this.videoQueue?.buffer.buffered)) continue;
      if (this.startGroup < 0) this.startGroup = obj.group;
      if (obj.object === 0) this.reinit(lane, this.videoQueue, "video");
      this.observeSpan(lane, obj);
      this.append(this.videoQueue, obj.payload, true);
      lane.last = { group: obj.group, object: obj.object };
      if (this.pending) this.maybeCutOver(now);
      if (lane !== this.video) return this.drain(this.video as Lane, now);
    }
    if (lane.seq.skipped > skippedBefore) this.abr?.lost(now);
    if (this.pending) this.maybeCutOver(now);
  }

  /** One video object's media span (./live_lane.ts `objectSpan`) into the live target. */
  private observeSpan(lane: Lane, obj: { group: number; object: number; payload: Uint8Array }): void {
    const { at, span } = objectSpan(this.lastMedia, obj, lane.track.initData);
    if (span !== null) this.edge.observeAppend(span);
    if (at) this.lastMedia = at;
  }

  /** Apply a changed init segment before a group's first object. */
  protected reinit(lane: Lane, queue: AppendQueue | null, kind: "video" | "audio"): void {
    const fresh = lane.freshInit;
    if (!fresh?.initData || !queue) return;
    lane.freshInit = null;
    lane.track = fresh;
    void queue.changeType(mimeFor(kind, fresh.codec ?? codecFromInit(fresh.initData)));
    this.append(queue, fresh.initData);
  }

  protected append(queue: AppendQueue | null, payload: Uint8Array, media = false): void {
    if (!queue || this.stopped) return;
    queue
      .append(payload)
      .then(() => {
        const b = this.opts.video.buffered;
        if (!b.length || this.stopped) return;
        const end = b.end(b.length - 1);
        if (media && end > this.newestEnd) this.edge.observeArrival(end, performance.now() / 1000);
        if (this.edge.waitingSince !== null) this.settleWait();
        this.newestEnd = Math.max(this.newestEnd, end);
        // Start on the first buffered frame, not on the next tick.
        if (!this.playing) this.startIfReady();
      })
      .catch((e: unknown) => this.fail(asPlaybackError(e, "decode")));
  }

  /** Switch to the pending rendition at its first group, once the current one has played up to it. */
  protected maybeCutOver(now: number): void {
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

  protected abandonPending(): void {
    this.pending?.sub?.unsubscribe();
    this.pending = null;
    if (this.video) this.video.seq.stopBefore = Number.POSITIVE_INFINITY;
  }

  protected switchTo(name: string): void {
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

  /** Begin playback at the start of the newest buffered range (the joined group's keyframe). */
  protected startIfReady(): void {
    const video = this.opts.video;
    const b = video.buffered;
    if (this.playing || this.stopped || !b.length) return;
    this.playing = true;
    video.currentTime = b.start(b.length - 1);
    this.play();
  }

  protected play(): void {
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
  protected awaitFrame(then: () => void): void {
    const video = this.opts.video;
    const onFrame = (): void => {
      if (!this.stopped) then();
    };
    if (typeof video.requestVideoFrameCallback === "function") video.requestVideoFrameCallback(onFrame);
    else video.addEventListener("playing", onFrame, { once: true });
  }

  protected endSoon(): void {
    if (this.ending || this.stopped) return;
    this.ending = true;
    this.setState("ending");
  }

  protected finishEnded(): void {
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

  /** Waiting while playing (not a seek, a pause, a reconnect or the end): "low" learns of a stall. */
  private readonly onWaiting = (): void => {
    const video = this.opts.video;
    if (!this.started || this.stopped || this.reconnecting || this.ending || video.seeking || video.paused) return;
    if (this.jumpGap()) return; // a hole in the buffer, not a dry one
    this.edge.waiting(performance.now() / 1000); // a stall, unless a later range comes next (settleWait)
  };

  /** After `waiting`: a later range came (jumped: not a stall) or the playhead's own grew (a stall). */
  private settleWait(): void {
    const video = this.opts.video;
    if (!this.jumpGap() && bufferedAhead(video.buffered, video.currentTime) > 0.05) this.edge.resumed(false);
  }

  /** A hole in the buffer at the playhead (./mse.ts `holeAhead`, e.g. a capture pause): jump over it. */
  protected jumpGap(): boolean {
    const video = this.opts.video;
    const to = holeAhead(video.buffered, video.currentTime);
    if (to === null) return false;
    video.currentTime = to;
    this.jumps += 1;
    this.edge.resumed(true); // a wait at a hole is no stall
    return true;
  }

  protected release(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.opts.video.removeEventListener("waiting", this.onWaiting);
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
      stalls: this.edge.stalls,
      handoverMaxMs: Math.round(Math.max(0, ...this.handovers)),
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
