/**
 * PLACEHOLDER owned by H6 (webcam publishing over MoQT): H6 replaces this whole file.
 * It exists so the package builds before publishing lands; its contract is
 * docs/web-sdk.md ("Publishing").
 */

import { PublishError } from "./errors.js";

export interface PublisherOptions {
  /** The origin's MoQT URL (WebTransport). */
  relayUrl?: string;
  /** Target duration of one MoQT group (ms); default 1000. */
  timesliceMs?: number;
  onError?: (e: PublishError) => void;
}

export class Publisher {
  readonly options: PublisherOptions;

  constructor(options: PublisherOptions = {}) {
    this.options = options;
  }

  async publish(inputId: string, streamKey: string, media: MediaStream, namespace?: string): Promise<void> {
    void inputId;
    void streamKey;
    void media;
    void namespace;
    throw new PublishError("unsupported", "publishing is not built yet");
  }

  stop(): void {}
}
