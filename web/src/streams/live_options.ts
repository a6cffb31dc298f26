/** The live player's options and states (./live.ts; the Viewer passes them through). */
import type { PlaybackError } from "./errors.js";
import type { ReconnectInfo, ReconnectOptions } from "./reconnect.js";

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
  /** How far behind the newest received media to play: a fixed number of ms; `"low"` (the
   * default: 200 ms, stepping down towards `floorLatencyMs` while the measured arrival
   * jitter stays well below, back to 200 ms at once on a stall); or `"auto"` (the arrival
   * jitter + 50 ms, 100 ms to 1 s). Raised to one object's duration + a margin when the
   * publisher's objects are longer (./catchup.ts). */
  targetLatencyMs?: number | "low" | "auto";
  /** `"low"` target: the lowest it goes (ms, default 130). */
  floorLatencyMs?: number;
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
