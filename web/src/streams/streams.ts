/**
 * `Streams`: the one client of the browser SDK.
 *
 * Control plane: `new Streams({ baseUrl, apiKey, orgId })` -> `liveInputs`, `assets`.
 * Data plane: `new Streams({ relayUrl })`, `new Streams({ apiBase, relayUrl })`,
 * `new Streams({ apiBase, token })` -> `viewer()`, `publisher()`. One client may do both.
 */

import { Assets, ControlClient, LiveInputs } from "./control.js";
import { ConfigurationError } from "./errors.js";
import { Publisher, type PublisherOptions } from "./publisher.js";
import { Viewer, type ViewerOptions } from "./viewer.js";

export interface StreamsOptions {
  /** Control plane base URL, e.g. "https://app.clutchcall.dev". */
  baseUrl?: string;
  /** A per-org API key (ck_...): control-plane calls only; never ship one to viewers. */
  apiKey?: string;
  /** The org the key belongs to. */
  orgId?: string;
  /** Base of on-demand delivery (/vod/) and /sdk/config.json; "" = this page's origin. Defaults to baseUrl, else "". */
  apiBase?: string;
  /** The relay (MoQT over WebTransport) for live viewers and publishers. */
  relayUrl?: string;
  /** A playback token; without it, the page URL's ?token= / #token= is used. */
  token?: string | null;
  /** fetch to use (defaults to the global one). */
  fetch?: typeof fetch;
}

export class Streams {
  readonly options: Readonly<StreamsOptions>;
  #control: ControlClient | null = null;
  #liveInputs: LiveInputs | null = null;
  #assets: Assets | null = null;

  constructor(options: StreamsOptions = {}) {
    if (options === null || typeof options !== "object") throw new ConfigurationError("Streams needs an options object");
    this.options = Object.freeze({ ...options });
  }

  get baseUrl(): string | undefined {
    return this.options.baseUrl;
  }

  get orgId(): string | undefined {
    return this.options.orgId;
  }

  get relayUrl(): string | undefined {
    return this.options.relayUrl;
  }

  /** Where on-demand delivery is: apiBase, else baseUrl, else this page's origin (""). */
  get apiBase(): string {
    return this.options.apiBase ?? this.options.baseUrl ?? "";
  }

  #client(): ControlClient {
    if (!this.#control) {
      const { baseUrl, apiKey, orgId } = this.options;
      if (baseUrl === undefined || !apiKey) {
        throw new ConfigurationError("control-plane calls need new Streams({ baseUrl, apiKey, orgId })");
      }
      const opts: ConstructorParameters<typeof ControlClient>[0] = { baseUrl, apiKey };
      if (orgId !== undefined) opts.orgId = orgId;
      if (this.options.fetch) opts.fetch = this.options.fetch;
      this.#control = new ControlClient(opts);
    }
    return this.#control;
  }

  /** Live inputs: create, get, list, update, delete, rotate keys, signed playback URLs. */
  get liveInputs(): LiveInputs {
    this.#liveInputs ??= new LiveInputs(this.#client());
    return this.#liveInputs;
  }

  /** On-demand assets: uploads, status, signed playback URLs. */
  get assets(): Assets {
    this.#assets ??= new Assets(this.#client());
    return this.#assets;
  }

  /** A viewer for lv_ (live) and pb_ (on demand) ids. */
  viewer(options: ViewerOptions = {}): Viewer {
    return new Viewer(
      { apiBase: this.apiBase, relayUrl: this.options.relayUrl, token: this.options.token, fetch: this.options.fetch },
      options,
    );
  }

  /** A webcam/MediaStream publisher over MoQT to this client's relayUrl. */
  publisher(options: PublisherOptions = {}): Publisher {
    const opts: PublisherOptions = { ...options };
    if (opts.relayUrl === undefined && this.options.relayUrl !== undefined) opts.relayUrl = this.options.relayUrl;
    return new Publisher(opts);
  }
}
