/**
 * The Viewer: one component for live and on-demand ids. `play()` picks the delivery by
 * the id's prefix: `lv_…` live over MoQT (./live.ts), `pb_…` on demand over HTTPS
 * (./vod.ts). A signed URL works too (a relay URL `…/stream/<org>/lv_…?token=` or a
 * catalog URL `…/vod/pb_…/catalog.json?token=`).
 */

import { PlaybackError } from "./errors.js";
import { type LiveState, playLive } from "./live.js";
import type { ReconnectInfo, ReconnectOptions } from "./reconnect.js";
import type { PlaybackHandle } from "./playback.js";
import { resolveToken } from "./token.js";
import { playVod } from "./vod.js";

export interface ViewerOptions {
  /** The first frame was presented. */
  onStarted?: () => void;
  /** Playback failed (it has stopped); also the rejection of play() when it fails to start. */
  onError?: (error: PlaybackError) => void;
  /** The live stream or the asset ended. */
  onEnded?: () => void;
  /** On demand: seconds buffered ahead of the playhead (default 20). */
  bufferAhead?: number;
  /** Live: how far behind the newest received media to play: "low" (default: 200 ms, down
   * to 130 ms while the measured arrival jitter allows, back at once on a stall), a fixed
   * number of ms, or "auto" (the arrival jitter + 50 ms, from 100 ms to 1 s). */
  targetLatencyMs?: number | "low" | "auto";
  /** Live: reconnect after a lost session or a relay's GOAWAY (default on: 10 attempts
   * within 20 s, 250 ms doubling to 3 s, jittered); `false`: a loss is `onError(network)`. */
  reconnect?: ReconnectOptions | false;
  /** Live: other relays (POPs) to try in turn when the one in use is lost. */
  fallbackUrls?: string[];
  /** Live: before each reconnect attempt. */
  onReconnecting?: (info: ReconnectInfo) => void;
  /** Live: `starting` -> `playing` <-> `reconnecting` -> `ending` -> `ended`, or `failed` / `stopped`. */
  onStateChange?: (state: LiveState) => void;
}

/** Where the data plane is: what a Streams client gives its viewers. */
export interface DataPlane {
  /** Base of /vod/ and /sdk/config.json ("" = this page's origin). */
  apiBase: string;
  /** The relay (POP) URL for live; when absent, read from <apiBase>/sdk/config.json. */
  relayUrl?: string | undefined;
  /** A playback token; when absent, the page URL's ?token= / #token=. */
  token?: string | null | undefined;
  fetch?: typeof fetch | undefined;
}

/** Where a signed or plain URL/id points. */
export interface PlaybackTarget {
  kind: "live" | "vod";
  id: string;
  token: string | null;
  /** Live: the relay URL taken from a signed URL; VOD: the catalog URL. */
  url: string | null;
}

/** Classify an id or a signed URL. Throws PlaybackError("not_found") for anything else. */
export function parseTarget(idOrUrl: string): PlaybackTarget {
  if (/^lv_[A-Za-z0-9]+$/.test(idOrUrl)) return { kind: "live", id: idOrUrl, token: null, url: null };
  if (/^pb_[A-Za-z0-9]+$/.test(idOrUrl)) return { kind: "vod", id: idOrUrl, token: null, url: null };
  let url: URL | null = null;
  try {
    url = new URL(idOrUrl);
  } catch {
    url = null;
  }
  if (url) {
    const token = url.searchParams.get("token");
    const segments = url.pathname.split("/").filter(Boolean);
    const vod = segments.indexOf("vod");
    if (vod >= 0 && /^pb_[A-Za-z0-9]+$/.test(segments[vod + 1] ?? "")) {
      return { kind: "vod", id: segments[vod + 1]!, token, url: url.href };
    }
    const last = segments[segments.length - 1] ?? "";
    if (/^lv_[A-Za-z0-9]+$/.test(last)) {
      const relay = url.protocol === "moqt:" ? `https://${url.host}` : `${url.protocol}//${url.host}`;
      return { kind: "live", id: last, token, url: relay };
    }
  }
  throw new PlaybackError("not_found", `not a playback id (lv_… or pb_…) or a signed URL: ${idOrUrl}`);
}

let configCache: Map<string, Promise<{ relay_url?: string }>> | null = null;

/** The deployment's public config (<apiBase>/sdk/config.json): where the relay is. */
export function discoverConfig(apiBase: string, f: typeof fetch = globalThis.fetch.bind(globalThis)): Promise<{ relay_url?: string; publish_url?: string | null }> {
  configCache ??= new Map();
  let pending = configCache.get(apiBase);
  if (!pending) {
    pending = f(`${apiBase.replace(/\/+$/, "")}/sdk/config.json`).then(async (res) => {
      if (!res.ok) throw new PlaybackError("network", `no relay URL given and ${apiBase || "this origin"}/sdk/config.json answered ${res.status}`);
      return (await res.json()) as { relay_url?: string };
    });
    pending.catch(() => configCache?.delete(apiBase));
    configCache.set(apiBase, pending);
  }
  return pending;
}

export class Viewer {
  readonly #plane: DataPlane;
  readonly #options: ViewerOptions;
  #video: HTMLVideoElement | null = null;
  #handle: PlaybackHandle | null = null;
  #generation = 0;

  constructor(plane: DataPlane, options: ViewerOptions = {}) {
    this.#plane = plane;
    this.#options = options;
  }

  /** The element playback renders into. */
  attach(video: HTMLVideoElement): void {
    if (!(video instanceof HTMLVideoElement)) throw new TypeError("attach() needs a <video> element");
    if (this.#video && this.#video !== video) this.stop();
    this.#video = video;
  }

  get video(): HTMLVideoElement | null {
    return this.#video;
  }

  /** Play an lv_ id (live), a pb_ id (on demand) or a signed URL. Resolves once playback is set up. */
  async play(idOrUrl: string): Promise<void> {
    this.stop();
    const generation = ++this.#generation;
    const video = this.#video;
    const report = (error: PlaybackError): void => {
      if (generation === this.#generation) this.#options.onError?.(error);
    };
    try {
      if (!video) throw new PlaybackError("unsupported", "call attach(videoElement) before play()");
      const target = parseTarget(idOrUrl);
      const token = target.token ?? resolveToken(this.#plane.token);
      const callbacks = {
        onStarted: () => {
          if (generation === this.#generation) this.#options.onStarted?.();
        },
        onError: report,
        onEnded: () => {
          if (generation === this.#generation) this.#options.onEnded?.();
        },
      };
      let handle: PlaybackHandle;
      if (target.kind === "vod") {
        const vodOptions: Parameters<typeof playVod>[0] = {
          video,
          id: target.url ?? target.id,
          apiBase: this.#plane.apiBase,
          token,
          ...callbacks,
        };
        if (this.#options.bufferAhead !== undefined) vodOptions.bufferAhead = this.#options.bufferAhead;
        if (this.#plane.fetch) vodOptions.fetch = this.#plane.fetch;
        handle = await playVod(vodOptions);
      } else {
        let relayUrl = target.url ?? this.#plane.relayUrl;
        if (!relayUrl) {
          const config = await discoverConfig(this.#plane.apiBase, this.#plane.fetch);
          relayUrl = config.relay_url;
        }
        if (!relayUrl) throw new PlaybackError("network", "no relayUrl given and none published by the control plane");
        const liveOptions: Parameters<typeof playLive>[0] = { video, relayUrl, id: target.id, ...callbacks };
        if (token) liveOptions.token = token;
        const o = this.#options;
        if (o.targetLatencyMs !== undefined) liveOptions.targetLatencyMs = o.targetLatencyMs;
        if (o.reconnect !== undefined) liveOptions.reconnect = o.reconnect;
        if (o.fallbackUrls) liveOptions.fallbackUrls = o.fallbackUrls;
        if (o.onReconnecting) {
          const cb = o.onReconnecting;
          liveOptions.onReconnecting = (info) => {
            if (generation === this.#generation) cb(info);
          };
        }
        if (o.onStateChange) {
          const cb = o.onStateChange;
          liveOptions.onStateChange = (state) => {
            if (generation === this.#generation) cb(state);
          };
        }
        handle = await playLive(liveOptions);
      }
      if (generation !== this.#generation) {
        handle.stop();
        return;
      }
      this.#handle = handle;
    } catch (err) {
      const error =
        err instanceof PlaybackError
          ? err
          : new PlaybackError(err instanceof TypeError ? "network" : "decode", err instanceof Error ? err.message : String(err), {
              cause: err,
            });
      report(error);
      throw error;
    }
  }

  /** Stop playback (idempotent). */
  stop(): void {
    this.#generation++;
    const handle = this.#handle;
    this.#handle = null;
    handle?.stop();
  }

  /** Playback stats of the current session ({} when idle). */
  stats(): Record<string, number | string> {
    return this.#handle?.stats() ?? {};
  }

  /** The current session's video renditions, best first ([] when idle). */
  renditions(): string[] {
    return this.#handle?.renditions() ?? [];
  }

  /** Pin a rendition by name, or "auto". */
  setRendition(name: string): void {
    this.#handle?.setRendition(name);
  }
}
