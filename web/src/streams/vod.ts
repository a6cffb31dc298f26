/**
 * On-demand playback (docs/vod.md): catalog.json, then each track's CMAF init and
 * `<group>.m4s` segments over HTTPS, fed to Media Source Extensions. Seeking finds the
 * last timeline record at or before the target (`[pts_ms, [group, 0], 0]`) and fetches
 * from that group. The token (signed assets) goes on every request as `?token=`.
 */

import { PlaybackError, playbackReasonForStatus } from "./errors.js";
import { AppendQueue, bufferedAhead, codecFromInit, mimeFor, openMediaSource } from "./mse.js";
import type { PlaybackCallbacks, PlaybackHandle } from "./playback.js";

export type TimelineRecord = [number, [number, number], number];

export interface VodTrack {
  name: string;
  role: "video" | "audio";
  codec: string | null;
  width: number | null;
  height: number | null;
  bitrate: number | null;
  initData: Uint8Array | null;
  /** Milliseconds. */
  trackDuration: number | null;
  timeline: TimelineRecord[];
}

export interface VodCatalog {
  namespace: string | null;
  /** Video tracks, highest bitrate first. */
  video: VodTrack[];
  audio: VodTrack[];
  /** Seconds (the longest trackDuration). */
  duration: number | null;
}

function bad(detail: string): PlaybackError {
  return new PlaybackError("decode", `catalog: ${detail}`);
}

function b64decode(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function num(v: unknown, where: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(`${where}: expected a number`);
  return v;
}

function parseTimeline(v: unknown, where: string): TimelineRecord[] {
  if (!Array.isArray(v)) throw bad(`${where}: an on-demand track needs a timeline array`);
  const out: TimelineRecord[] = [];
  v.forEach((r: unknown, i: number) => {
    if (!Array.isArray(r) || r.length !== 3 || !Array.isArray(r[1]) || r[1].length !== 2) {
      throw bad(`${where}[${i}]: expected [pts_ms, [group, object], wallclock]`);
    }
    const [pts, [group, obj], wall] = r as [unknown, [unknown, unknown], unknown];
    if (![pts, group, obj, wall].every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0)) {
      throw bad(`${where}[${i}]: expected non-negative integers`);
    }
    const prev = out[out.length - 1];
    if (prev && ((group as number) <= prev[1][0] || (pts as number) < prev[0])) {
      throw bad(`${where}[${i}]: groups must increase and times must not go back`);
    }
    out.push([pts as number, [group as number, obj as number], wall as number]);
  });
  return out;
}

/** Parse and check an on-demand catalog (MSF/CMSF JSON with timelines). Throws PlaybackError("decode"). */
export function parseVodCatalog(json: unknown): VodCatalog {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw bad("not a JSON object");
  const root = json as Record<string, unknown>;
  const tracks = root["tracks"];
  if (!Array.isArray(tracks)) throw bad("no tracks array");
  const video: VodTrack[] = [];
  const audio: VodTrack[] = [];
  let namespace = typeof root["namespace"] === "string" ? (root["namespace"] as string) : null;
  for (const [i, raw] of tracks.entries()) {
    if (raw === null || typeof raw !== "object") throw bad(`tracks[${i}]: not an object`);
    const t = raw as Record<string, unknown>;
    const role = t["role"];
    if (role !== "video" && role !== "audio") continue;
    const where = `tracks[${i}]`;
    if (typeof t["name"] !== "string" || !/^[A-Za-z0-9._-]+$/.test(t["name"])) throw bad(`${where}: bad name`);
    if (t["packaging"] !== undefined && t["packaging"] !== "cmaf") throw bad(`${where}: packaging must be cmaf`);
    if (namespace === null && typeof t["namespace"] === "string") namespace = t["namespace"];
    let initData: Uint8Array | null = null;
    if (typeof t["initData"] === "string") {
      try {
        initData = b64decode(t["initData"]);
      } catch {
        throw bad(`${where}: initData is not base64`);
      }
    }
    const track: VodTrack = {
      name: t["name"],
      role,
      codec: typeof t["codec"] === "string" ? t["codec"] : null,
      width: num(t["width"], `${where}.width`),
      height: num(t["height"], `${where}.height`),
      bitrate: num(t["bitrate"], `${where}.bitrate`),
      initData,
      trackDuration: num(t["trackDuration"], `${where}.trackDuration`),
      timeline: parseTimeline(t["timeline"], `${where}.timeline`),
    };
    (role === "video" ? video : audio).push(track);
  }
  if (video.length === 0 && audio.length === 0) throw bad("no video or audio track");
  video.sort((a, b) => (b.bitrate ?? 0) - (a.bitrate ?? 0) || (b.height ?? 0) - (a.height ?? 0));
  const durations = [...video, ...audio].map((t) => t.trackDuration).filter((d): d is number => d !== null);
  const duration = durations.length ? Math.max(...durations) / 1000 : null;
  return { namespace, video, audio, duration };
}

/** Index of the last timeline record at or before `ms` (0 before the first). */
export function recordIndexAt(timeline: TimelineRecord[], ms: number): number {
  let lo = 0;
  let hi = timeline.length - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (timeline[mid]![0] <= ms) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** The group to fetch to show time `ms`: the last record at or before it. */
export function groupAt(timeline: TimelineRecord[], ms: number): number {
  const rec = timeline[recordIndexAt(timeline, ms)];
  if (!rec) throw new RangeError("empty timeline");
  return rec[1][0];
}

/** The catalog URL of a playback id, or the URL itself (a signed catalog URL). */
export function catalogUrl(idOrUrl: string, apiBase: string, token?: string | null): URL {
  const base = typeof location !== "undefined" ? location.href : "http://localhost/";
  let url: URL;
  if (/^https?:\/\//.test(idOrUrl)) {
    url = new URL(idOrUrl);
  } else {
    if (!/^pb_[A-Za-z0-9]+$/.test(idOrUrl)) throw new PlaybackError("not_found", `not a playback id: ${idOrUrl}`);
    url = new URL(`${apiBase.replace(/\/+$/, "")}/vod/${idOrUrl}/catalog.json`, base);
  }
  if (token && !url.searchParams.has("token")) url.searchParams.set("token", token);
  return url;
}

/** The URL of a file next to the catalog (`<track>/init.mp4`, `<track>/<group>.m4s`), with the token. */
export function resourceUrl(catalog: URL, path: string): URL {
  const url = new URL(path, catalog);
  const token = catalog.searchParams.get("token");
  if (token) url.searchParams.set("token", token);
  return url;
}

export interface VodOptions extends PlaybackCallbacks {
  video: HTMLVideoElement;
  /** A pb_ id (resolved against apiBase) or a catalog URL (signed or not). */
  id: string;
  apiBase: string;
  token?: string | null;
  /** Seconds of media to keep buffered ahead of the playhead (default 20). */
  bufferAhead?: number;
  fetch?: typeof fetch;
}

async function fetchBytes(f: typeof fetch, url: URL, signal: AbortSignal): Promise<Uint8Array> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    let res: Response;
    try {
      res = await f(url, { signal });
    } catch (err) {
      if (signal.aborted) throw err;
      lastError = err;
      await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
      continue;
    }
    if (res.ok) return new Uint8Array(await res.arrayBuffer());
    if (res.status >= 500 && attempt < 2) {
      lastError = new Error(`HTTP ${res.status}`);
      continue;
    }
    let detail = `HTTP ${res.status} for ${url.pathname}`;
    try {
      const body = (await res.json()) as { detail?: string };
      if (typeof body.detail === "string") detail = body.detail;
    } catch {
      /* not problem JSON */
    }
    throw new PlaybackError(playbackReasonForStatus(res.status), detail);
  }
  throw new PlaybackError("network", `cannot fetch ${url.pathname}: ${String(lastError)}`, { cause: lastError });
}

class Feeder {
  track: VodTrack;
  pending: VodTrack | null = null;
  index = 0;
  done = false;
  initFor: string | null = null;
  codec: string | null = null;
  controller = new AbortController();
  bytes = 0;
  segments = 0;
  /** Bits per second measured on the last segment downloads. */
  throughput = 0;

  constructor(
    readonly queue: AppendQueue,
    track: VodTrack,
  ) {
    this.track = track;
  }
}

/** Play an on-demand asset in `video`. Rejects (and calls onError) when it cannot start. */
export async function playVod(options: VodOptions): Promise<PlaybackHandle> {
  const f = options.fetch ?? globalThis.fetch.bind(globalThis);
  const video = options.video;
  const ahead = options.bufferAhead ?? 20;
  const url = catalogUrl(options.id, options.apiBase, options.token);
  if (typeof MediaSource === "undefined") throw new PlaybackError("unsupported", "this browser has no Media Source Extensions");
  const stopper = new AbortController();
  const catalogBytes = await fetchBytes(f, url, stopper.signal);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(catalogBytes));
  } catch {
    throw new PlaybackError("decode", "catalog.json is not JSON");
  }
  const catalog = parseVodCatalog(parsed);

  let stopped = false;
  let started = false;
  let ended = false;
  let pinned: string | null = null;
  const listeners: Array<[EventTarget, string, EventListener]> = [];
  const on = (target: EventTarget, type: string, fn: EventListener): void => {
    target.addEventListener(type, fn);
    listeners.push([target, type, fn]);
  };
  let wake: () => void = () => undefined;
  const nap = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  const { source, url: objectUrl } = await openMediaSource(video);
  if (catalog.duration !== null) source.duration = catalog.duration;

  const feeders: Feeder[] = [];
  const initOf = async (track: VodTrack, signal: AbortSignal): Promise<Uint8Array> =>
    track.initData ?? (await fetchBytes(f, resourceUrl(url, `${track.name}/init.mp4`), signal));

  const startVideo = chooseStart(catalog.video, video);
  // Every SourceBuffer is added before the first append (browsers refuse one added later).
  const inits: Uint8Array[] = [];
  try {
    for (const track of [startVideo, catalog.audio[0]]) {
      if (!track) continue;
      const init = await initOf(track, stopper.signal);
      const codec = track.codec ?? codecFromInit(init);
      const type = mimeFor(track.role, codec);
      if (!MediaSource.isTypeSupported(type)) throw new PlaybackError("unsupported", `cannot play ${type}`);
      const feeder = new Feeder(new AppendQueue(source.addSourceBuffer(type), video), track);
      feeder.codec = codec;
      feeder.initFor = track.name;
      feeders.push(feeder);
      inits.push(init);
    }
    await Promise.all(feeders.map((fd, i) => fd.queue.append(inits[i]!)));
  } catch (err) {
    video.removeAttribute("src");
    URL.revokeObjectURL(objectUrl);
    throw err;
  }

  const fail = (err: unknown): void => {
    if (stopped) return;
    const error =
      err instanceof PlaybackError
        ? err
        : new PlaybackError("decode", err instanceof Error ? err.message : String(err), { cause: err });
    handle.stop();
    options.onError(error);
  };

  const maybeEnd = (): void => {
    if (feeders.every((fd) => fd.done) && source.readyState === "open") {
      void Promise.all(feeders.map((fd) => fd.queue.idle())).then(() => {
        if (!stopped && feeders.every((fd) => fd.done) && source.readyState === "open" && !feeders.some((fd) => fd.queue.buffer.updating)) {
          source.endOfStream();
        }
      });
    }
  };

  const abr = (feeder: Feeder): void => {
    if (feeder.track.role !== "video" || catalog.video.length < 2) return;
    let next: VodTrack | undefined;
    if (pinned !== null) next = catalog.video.find((t) => t.name === pinned);
    else if (feeder.throughput > 0) {
      next = catalog.video.find((t) => (t.bitrate ?? 0) <= feeder.throughput * 0.7) ?? catalog.video[catalog.video.length - 1];
    }
    if (next && next.name !== feeder.track.name) feeder.pending = next;
  };

  const run = async (feeder: Feeder): Promise<void> => {
    while (!stopped) {
      if (feeder.done || feeder.index >= feeder.track.timeline.length) {
        feeder.done = true;
        maybeEnd();
        await nap(1000);
        continue;
      }
      const rec = feeder.track.timeline[feeder.index]!;
      if (rec[0] / 1000 - video.currentTime > ahead) {
        await nap(500);
        continue;
      }
      const signal = feeder.controller.signal;
      if (feeder.pending) {
        // A rendition switch. A seek can cut it at any await (the init fetch, or its append,
        // which the seek aborts): the switch stays pending and is made again, init segment
        // first, from where the seek moved the feeder.
        const next = feeder.pending;
        let init: Uint8Array;
        try {
          init = await initOf(next, signal);
        } catch (err) {
          if (signal.aborted && !stopped) continue;
          throw err;
        }
        if (signal.aborted) continue;
        const codec = next.codec ?? codecFromInit(init);
        if (codec !== feeder.codec) await feeder.queue.changeType(mimeFor("video", codec));
        feeder.codec = codec;
        await feeder.queue.append(init);
        if (signal.aborted) continue;
        if (feeder.pending === next) feeder.pending = null;
        feeder.track = next;
        feeder.initFor = next.name;
        feeder.index = recordIndexAt(next.timeline, rec[0]);
        continue;
      }
      const t0 = performance.now();
      let data: Uint8Array;
      try {
        data = await fetchBytes(f, resourceUrl(url, `${feeder.track.name}/${rec[1][0]}.m4s`), signal);
      } catch (err) {
        if (signal.aborted && !stopped) continue; // a seek moved the feeder
        throw err;
      }
      const secs = Math.max((performance.now() - t0) / 1000, 0.001);
      feeder.throughput = feeder.throughput ? 0.7 * feeder.throughput + 0.3 * ((data.byteLength * 8) / secs) : (data.byteLength * 8) / secs;
      if (signal.aborted) continue;
      await feeder.queue.append(data);
      if (signal.aborted) continue;
      feeder.bytes += data.byteLength;
      feeder.segments += 1;
      feeder.index += 1;
      abr(feeder);
      // Keep at most 30 s behind the playhead.
      const behind = video.currentTime - 30;
      const buf = feeder.queue.buffer.buffered;
      if (behind > 0 && buf.length && buf.start(0) < behind) await feeder.queue.remove(0, behind);
      skipGap();
    }
  };

  const skipGap = (): void => {
    const b = video.buffered;
    if (!b.length || video.seeking) return;
    const t = video.currentTime;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= t + 0.05 && t < b.end(i)) return;
      if (b.start(i) > t && b.start(i) - t < 2.5) {
        video.currentTime = b.start(i) + 0.001;
        return;
      }
    }
  };

  const onSeeking = (): void => {
    const t = video.currentTime;
    ended = false;
    for (const feeder of feeders) {
      if (bufferedAhead(feeder.queue.buffer.buffered, t, 0) > 0.5) continue;
      feeder.controller.abort();
      feeder.controller = new AbortController();
      feeder.queue.abort();
      feeder.index = recordIndexAt(feeder.track.timeline, t * 1000);
      feeder.done = false;
    }
    wake();
  };

  const handle: PlaybackHandle = {
    stop(): void {
      if (stopped) return;
      stopped = true;
      stopper.abort();
      for (const fd of feeders) fd.controller.abort();
      for (const [target, type, fn] of listeners) target.removeEventListener(type, fn);
      wake();
      try {
        video.pause();
        video.removeAttribute("src");
        video.load();
      } catch {
        /* element gone */
      }
      URL.revokeObjectURL(objectUrl);
    },
    stats(): Record<string, number | string> {
      const v = feeders.find((fd) => fd.track.role === "video");
      const q = video.getVideoPlaybackQuality?.();
      return {
        mode: "vod",
        rendition: v?.track.name ?? "",
        width: video.videoWidth,
        height: video.videoHeight,
        currentTime: Number(video.currentTime.toFixed(3)),
        duration: catalog.duration ?? NaN,
        bufferedAhead: Number(bufferedAhead(video.buffered, video.currentTime).toFixed(3)),
        throughputKbps: Math.round((v?.throughput ?? 0) / 1000),
        bytes: feeders.reduce((n, fd) => n + fd.bytes, 0),
        segments: feeders.reduce((n, fd) => n + fd.segments, 0),
        decodedFrames: q?.totalVideoFrames ?? 0,
        droppedFrames: q?.droppedVideoFrames ?? 0,
      };
    },
    setRendition(name: string): void {
      if (name !== "auto" && !catalog.video.some((t) => t.name === name)) {
        throw new RangeError(`no rendition ${name}; have ${catalog.video.map((t) => t.name).join(", ")}`);
      }
      pinned = name === "auto" ? null : name;
      for (const fd of feeders) if (fd.track.role === "video") abr(fd);
    },
    renditions(): string[] {
      return catalog.video.map((t) => t.name);
    },
  };

  on(video, "seeking", onSeeking);
  on(video, "timeupdate", () => wake());
  on(video, "waiting", () => {
    skipGap();
    wake();
  });
  on(video, "ended", () => {
    if (!ended && !stopped) {
      ended = true;
      options.onEnded();
    }
  });
  on(video, "error", () => {
    const err = video.error;
    if (err) fail(new PlaybackError(err.code === 4 ? "unsupported" : "decode", err.message || `media error ${err.code}`));
  });

  const markStarted = (): void => {
    if (started || stopped) return;
    started = true;
    options.onStarted();
  };
  if (typeof video.requestVideoFrameCallback === "function") {
    video.requestVideoFrameCallback(() => markStarted());
  } else {
    on(video, "playing", () => markStarted());
  }

  for (const feeder of feeders) run(feeder).catch(fail);
  void startPlayback(video);
  return handle;
}

/** The first video rendition: the smallest that still fills the element, else the lowest. */
function chooseStart(tracks: VodTrack[], video: HTMLVideoElement): VodTrack | undefined {
  if (tracks.length === 0) return undefined;
  const dpr = typeof devicePixelRatio === "number" ? devicePixelRatio : 1;
  const want = Math.max(video.clientHeight * dpr, 360);
  const fitting = tracks.filter((t) => (t.height ?? 0) >= want);
  return fitting[fitting.length - 1] ?? tracks[0];
}

/** play(); when autoplay with sound is refused, retry muted (the user can unmute). */
async function startPlayback(video: HTMLVideoElement): Promise<void> {
  try {
    await video.play();
  } catch (err) {
    if (err instanceof DOMException && err.name === "NotAllowedError") {
      video.muted = true;
      await video.play().catch(() => undefined);
    }
  }
}
