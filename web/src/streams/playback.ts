/**
 * The shape every playback path returns (live over MoQT in ./live.ts, on demand over
 * HTTPS in ./vod.ts); the Viewer forwards to it. Structural: live.ts may declare its own
 * identical interface.
 */

import type { PlaybackError } from "./errors.js";

export interface PlaybackHandle {
  /** Stop playback, release the network and the media element. Idempotent. */
  stop(): void;
  /** Numbers and labels for a stats overlay (rendition, bufferedAhead, latency...). */
  stats(): Record<string, number | string>;
  /** Pin a rendition by its track name, or "auto" for adaptive choice. */
  setRendition(name: string): void;
  /** The names of the video renditions, best first. */
  renditions(): string[];
}

export interface PlaybackCallbacks {
  /** Called once, when the first frame is presented. */
  onStarted: () => void;
  /** Called for every failure; playback has stopped when it is called. */
  onError: (error: PlaybackError) => void;
  /** Called when the stream or the asset ended. */
  onEnded: () => void;
}
