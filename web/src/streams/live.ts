/**
 * PLACEHOLDER owned by H5 (live playback over MoQT/WebTransport): H5 replaces this whole
 * file. It exists so the package builds before live playback lands; its contract is
 * docs/web-sdk.md ("Live playback").
 */

import { PlaybackError } from "./errors.js";
import type { PlaybackHandle } from "./playback.js";

export type { PlaybackHandle } from "./playback.js";

export interface LiveOptions {
  video: HTMLVideoElement;
  relayUrl: string;
  id: string;
  token?: string;
  onStarted: () => void;
  onError: (e: PlaybackError) => void;
  onEnded: () => void;
}

export async function playLive(opts: LiveOptions): Promise<PlaybackHandle> {
  void opts;
  throw new PlaybackError("unsupported", "live playback is not built yet");
}
