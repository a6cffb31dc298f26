/**
 * The control-plane client: live inputs, signed playback URLs, assets and uploads.
 *
 * JSON names are the API's (docs/vod.md, the OpenAPI document at /docs): a live input
 * has `external_input_id`, an upload answer has `uploadUrl`/`assetId`. Every failure is
 * a typed error from ./errors.ts.
 *
 * Every POST that creates or changes something (create an input, rotate its key, sign a
 * playback URL, revoke, create an upload) carries an `Idempotency-Key` (the caller's
 * `idempotencyKey`, else a new UUID v4) and is sent again under the same key after a
 * network failure or a 502/503/504 (or 409 "still in progress"): the control plane
 * answers a retry with the first answer, so a lost answer never makes a second input
 * or loses a stream key.
 */

import { ApiError, ConfigurationError, ConnectionFailed, apiErrorFrom } from "./errors.js";

export type Ingest = "fmp4" | "rtmp" | (string & {});

export interface ControlOptions {
  /** Base URL of the control plane, e.g. "https://app.clutchcall.dev" ("" = this page's origin). */
  baseUrl: string;
  /** A per-org API key (ck_...). */
  apiKey: string;
  /** The org the key must belong to (sent as X-ClutchCall-Org; another org's key gives NotFound). */
  orgId?: string;
  /** fetch to use (defaults to the global one). */
  fetch?: typeof fetch;
  /** Retries of a create under its Idempotency-Key (default 4 retries, 250 ms doubling to 5 s). */
  retry?: RetryOptions;
}

export interface RetryOptions {
  /** More attempts after the first (0: none). */
  retries?: number;
  /** First wait in ms (doubling, with jitter); a Retry-After the server names wins. */
  baseMs?: number;
  /** Longest wait in ms. */
  capMs?: number;
}

/** A create's own key: the same key on a later call gets the first answer again. */
export interface IdempotentOptions {
  idempotencyKey?: string;
}

const RETRY_STATUSES = new Set([502, 503, 504]);
const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

/** A random (v4) UUID; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function newIdempotencyKey(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function retryWorthy(err: unknown): boolean {
  if (err instanceof ConnectionFailed) return true;
  if (err instanceof ApiError) {
    return RETRY_STATUSES.has(err.status) || (err.status === 409 && err.type.endsWith("/idempotency-key-in-use"));
  }
  return false;
}

export interface LiveInputData {
  id: string;
  org_id: string;
  external_input_id: string;
  name: string;
  ingest: Ingest;
  rtmp_url: string;
  namespace: string;
  status: "idle" | "live" | "error";
  last_error: string | null;
  status_at: string | null;
  stream_key_rotated_at: string;
  created_at: string;
  updated_at: string;
}

export interface PlaybackTicket {
  /** The signed playback URL (live: <relay>/<namespace>?token=; on demand: .../catalog.json?token=). */
  url: string;
  token: string;
  expires_at: string;
  jti: string;
  kid: string;
  sub: string;
}

export interface Revocation {
  kind: "jti" | "sub";
  jti: string | null;
  sub: string | null;
  before: string | null;
  expires_at: string;
  revoked_at: string;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface Rendition {
  name: string;
  width: number;
  height: number;
  bitrate: number;
  codec: string;
}

export type AssetStatus = "waiting_upload" | "uploading" | "processing" | "ready" | "errored";

export interface AssetData {
  id: string;
  playback_id: string;
  name: string;
  status: AssetStatus;
  progress: number | null;
  error: { code: string; message: string } | null;
  size: number | null;
  duration: number | null;
  renditions: Rendition[];
  require_signed_urls: boolean;
  meta: Record<string, string>;
  created_at: string;
  updated_at: string;
  ready_at: string | null;
  upload_expires_at: string | null;
  playback_url: string | null;
}

export interface CreateUploadOptions {
  name: string;
  maxDurationSeconds?: number;
  expiresInSeconds?: number;
  requireSignedUrls?: boolean;
  meta?: Record<string, string>;
  size?: number;
}

export interface UploadTicket {
  uploadUrl: string;
  assetId: string;
  playbackId: string;
  expiresAt: string;
  asset: Asset;
}

export interface UploadProgress {
  sent: number;
  total: number;
}

export interface UploadOptions {
  /** Bytes per PATCH (default 8 MiB). */
  chunkSize?: number;
  onProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/** The HTTP layer: JSON in, JSON out, problem JSON to typed errors. */
export class ControlClient {
  readonly baseUrl: string;
  readonly orgId: string | undefined;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;
  readonly #retry: Required<RetryOptions>;

  constructor(options: ControlOptions) {
    if (typeof options.apiKey !== "string" || options.apiKey === "") {
      throw new ConfigurationError("an apiKey is required for control-plane calls");
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.orgId = options.orgId;
    this.#apiKey = options.apiKey;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#retry = { retries: 4, baseMs: 250, capMs: 5000, ...options.retry };
  }

  /**
   * A create: sent with an Idempotency-Key and, after a network failure, 502/503/504 or a
   * 409 "still in progress", sent again with the same key (the server replays its answer).
   */
  async idempotent<T>(method: string, path: string, body?: unknown, options: IdempotentOptions = {}): Promise<T> {
    const key = options.idempotencyKey ?? newIdempotencyKey();
    if (typeof key !== "string" || !KEY_PATTERN.test(key)) {
      throw new ConfigurationError(`idempotencyKey must be 1 to 255 printable ASCII characters, got ${JSON.stringify(key)}`);
    }
    for (let failures = 0; ; ) {
      try {
        return await this.request<T>(method, path, body, { "Idempotency-Key": key });
      } catch (err) {
        if (failures >= this.#retry.retries || !retryWorthy(err)) throw err;
        failures += 1;
        await new Promise((r) => setTimeout(r, this.#delay(failures, err)));
      }
    }
  }

  #delay(failures: number, err: unknown): number {
    const named = err instanceof ApiError ? Number(err.headers.get("retry-after") ?? NaN) : NaN;
    if (Number.isFinite(named) && named >= 0) return Math.min(this.#retry.capMs, named * 1000);
    const backoff = Math.min(this.#retry.capMs, this.#retry.baseMs * 2 ** (failures - 1));
    return backoff * (0.8 + 0.2 * Math.random());
  }

  async request<T>(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.#apiKey}`,
      Accept: "application/json, application/problem+json",
      ...extra,
    };
    if (this.orgId) headers["X-ClutchCall-Org"] = this.orgId;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response: Response;
    try {
      response = await this.#fetch(`${this.baseUrl}${path}`, init);
    } catch (err) {
      throw new ConnectionFailed(`cannot reach the control plane at ${this.baseUrl || "this origin"}: ${String(err)}`, {
        cause: err,
      });
    }
    if (!response.ok) throw await apiErrorFrom(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

function assertId(id: unknown, prefix: string): string {
  if (typeof id !== "string" || !id.startsWith(prefix)) {
    throw new ConfigurationError(`expected an id starting with ${prefix}, got ${JSON.stringify(id)}`);
  }
  return id;
}

/** A live input (its fields are the API's), with the calls that act on it. */
export class LiveInput implements LiveInputData {
  id!: string;
  org_id!: string;
  external_input_id!: string;
  name!: string;
  ingest!: Ingest;
  rtmp_url!: string;
  namespace!: string;
  status!: "idle" | "live" | "error";
  last_error!: string | null;
  status_at!: string | null;
  stream_key_rotated_at!: string;
  created_at!: string;
  updated_at!: string;
  readonly #inputs: LiveInputs;

  constructor(inputs: LiveInputs, data: LiveInputData) {
    this.#inputs = inputs;
    Object.assign(this, data);
  }

  /** A signed playback URL (ES256 JWT) valid for ttlSeconds (60 s .. 24 h). */
  signedPlaybackUrl(options: { ttlSeconds?: number } = {}): Promise<PlaybackTicket> {
    return this.#inputs.signedPlaybackUrl({ id: this.id, ...options });
  }

  /** A fresh stream key (the old one stops working). */
  rotateStreamKey(options: IdempotentOptions = {}): Promise<{ input: LiveInput; streamKey: string }> {
    return this.#inputs.rotateStreamKey({ ...options, id: this.id });
  }

  revokePlayback(): Promise<Revocation> {
    return this.#inputs.revokePlayback({ id: this.id });
  }

  refresh(): Promise<LiveInput> {
    return this.#inputs.get({ id: this.id });
  }

  update(changes: { name?: string; ingest?: Ingest }): Promise<LiveInput> {
    return this.#inputs.update({ id: this.id, ...changes });
  }

  delete(): Promise<void> {
    return this.#inputs.delete({ id: this.id });
  }

  toJSON(): LiveInputData {
    const { id, org_id, external_input_id, name, ingest, rtmp_url, namespace, status } = this;
    const { last_error, status_at, stream_key_rotated_at, created_at, updated_at } = this;
    return {
      id, org_id, external_input_id, name, ingest, rtmp_url, namespace, status,
      last_error, status_at, stream_key_rotated_at, created_at, updated_at,
    };
  }
}

/** `streams.liveInputs`. */
export class LiveInputs {
  readonly #client: ControlClient;

  constructor(client: ControlClient) {
    this.#client = client;
  }

  #input(data: LiveInputData): LiveInput {
    return new LiveInput(this, data);
  }

  /** Create an input; `streamKey` is returned only here and by rotateStreamKey. */
  async create(
    options: { name: string; ingest?: Ingest } & IdempotentOptions,
  ): Promise<{ input: LiveInput; streamKey: string }> {
    const body = { name: options.name, ingest: options.ingest ?? "fmp4" };
    const out = await this.#client.idempotent<{ input: LiveInputData; streamKey: string }>(
      "POST",
      "/v1/live_inputs",
      body,
      options,
    );
    return { input: this.#input(out.input), streamKey: out.streamKey };
  }

  async get(options: { id: string }): Promise<LiveInput> {
    const id = encodeURIComponent(options.id);
    return this.#input(await this.#client.request<LiveInputData>("GET", `/v1/live_inputs/${id}`));
  }

  /** One page, newest first; pass `next_cursor` as `cursor` for the next. */
  async list(options: { limit?: number; cursor?: string } = {}): Promise<Page<LiveInput>> {
    const page = await this.#client.request<Page<LiveInputData>>(
      "GET",
      `/v1/live_inputs${query({ limit: options.limit, cursor: options.cursor })}`,
    );
    return { data: page.data.map((d) => this.#input(d)), next_cursor: page.next_cursor };
  }

  async update(options: { id: string; name?: string; ingest?: Ingest }): Promise<LiveInput> {
    const { id, ...changes } = options;
    return this.#input(
      await this.#client.request<LiveInputData>("PATCH", `/v1/live_inputs/${encodeURIComponent(id)}`, changes),
    );
  }

  async delete(options: { id: string }): Promise<void> {
    await this.#client.request<void>("DELETE", `/v1/live_inputs/${encodeURIComponent(options.id)}`);
  }

  async rotateStreamKey(options: { id: string } & IdempotentOptions): Promise<{ input: LiveInput; streamKey: string }> {
    const out = await this.#client.idempotent<{ input: LiveInputData; streamKey: string }>(
      "POST",
      `/v1/live_inputs/${encodeURIComponent(options.id)}/rotate_stream_key`,
      undefined,
      options,
    );
    return { input: this.#input(out.input), streamKey: out.streamKey };
  }

  signedPlaybackUrl(options: { id: string; ttlSeconds?: number }): Promise<PlaybackTicket> {
    return this.#client.idempotent<PlaybackTicket>(
      "POST",
      `/v1/live_inputs/${encodeURIComponent(options.id)}/playback_urls`,
      { ttl_seconds: options.ttlSeconds ?? 3600 },
    );
  }

  revokePlayback(options: { id: string }): Promise<Revocation> {
    return this.#client.idempotent<Revocation>(
      "POST",
      `/v1/live_inputs/${encodeURIComponent(options.id)}/revoke_playback`,
    );
  }
}

/** An on-demand asset (its fields are the API's). */
export class Asset implements AssetData {
  id!: string;
  playback_id!: string;
  name!: string;
  status!: AssetStatus;
  progress!: number | null;
  error!: { code: string; message: string } | null;
  size!: number | null;
  duration!: number | null;
  renditions!: Rendition[];
  require_signed_urls!: boolean;
  meta!: Record<string, string>;
  created_at!: string;
  updated_at!: string;
  ready_at!: string | null;
  upload_expires_at!: string | null;
  playback_url!: string | null;
  readonly #assets: Assets;

  constructor(assets: Assets, data: AssetData) {
    this.#assets = assets;
    Object.assign(this, data);
  }

  signedPlaybackUrl(options: { ttlSeconds?: number } = {}): Promise<PlaybackTicket> {
    return this.#assets.signedPlaybackUrl({ id: this.id, ...options });
  }

  refresh(): Promise<Asset> {
    return this.#assets.get({ id: this.id });
  }

  delete(): Promise<void> {
    return this.#assets.delete({ id: this.id });
  }
}

/** `streams.assets` (docs/vod.md). */
export class Assets {
  readonly #client: ControlClient;

  constructor(client: ControlClient) {
    this.#client = client;
  }

  #asset(data: AssetData): Asset {
    return new Asset(this, data);
  }

  /** A new asset and its upload URL (a capability: no API key needed to upload to it). */
  async createUpload(options: CreateUploadOptions & IdempotentOptions): Promise<UploadTicket> {
    const { idempotencyKey, ...body } = options;
    const out = await this.#client.idempotent<Omit<UploadTicket, "asset"> & { asset: AssetData }>(
      "POST",
      "/v1/assets/uploads",
      body,
      idempotencyKey === undefined ? {} : { idempotencyKey },
    );
    return { ...out, asset: this.#asset(out.asset) };
  }

  async get(options: { id: string }): Promise<Asset> {
    return this.#asset(await this.#client.request<AssetData>("GET", `/v1/assets/${encodeURIComponent(options.id)}`));
  }

  async list(options: { limit?: number; cursor?: string } = {}): Promise<Page<Asset>> {
    const page = await this.#client.request<Page<AssetData>>(
      "GET",
      `/v1/assets${query({ limit: options.limit, cursor: options.cursor })}`,
    );
    return { data: page.data.map((d) => this.#asset(d)), next_cursor: page.next_cursor };
  }

  async delete(options: { id: string }): Promise<void> {
    await this.#client.request<void>("DELETE", `/v1/assets/${encodeURIComponent(options.id)}`);
  }

  signedPlaybackUrl(options: { id: string; ttlSeconds?: number }): Promise<PlaybackTicket> {
    return this.#client.idempotent<PlaybackTicket>(
      "POST",
      `/v1/assets/${encodeURIComponent(assertId(options.id, "as_"))}/playback_urls`,
      { ttl_seconds: options.ttlSeconds ?? 3600 },
    );
  }

  /** Poll until the asset is ready (resolves) or errored (rejects with ApiError-like details). */
  async waitReady(options: { id: string; intervalMs?: number; timeoutMs?: number; onUpdate?: (a: Asset) => void }): Promise<Asset> {
    const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
    for (;;) {
      const asset = await this.get({ id: options.id });
      options.onUpdate?.(asset);
      if (asset.status === "ready") return asset;
      if (asset.status === "errored") {
        throw new ApiError(422, {
          type: `https://clutchcall.dev/problems/asset-${asset.error?.code ?? "errored"}`,
          title: "Asset Errored",
          detail: asset.error?.message ?? "the asset could not be packaged",
        });
      }
      if (Date.now() > deadline) throw new ConnectionFailed(`asset ${asset.id} is still ${asset.status}`);
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 1000));
    }
  }

  /** Upload `data` to an upload URL (the seed's resumable form, Tus-Resumable 2.0.0), resuming at its offset. */
  upload(uploadUrl: string, data: Blob | Uint8Array, options: UploadOptions = {}): Promise<void> {
    return uploadResumable(uploadUrl, data, options);
  }
}

/**
 * The seed's resumable upload: HEAD for `Upload-Offset`, then PATCH chunks with
 * `Upload-Offset`; `Upload-Length` is sent so the upload completes as soon as the
 * last byte is stored. A 409 (another writer moved the offset) resumes at the offset
 * the server names.
 */
export async function uploadResumable(uploadUrl: string, data: Blob | Uint8Array, options: UploadOptions = {}): Promise<void> {
  const f = options.fetch ?? globalThis.fetch.bind(globalThis);
  const blob = data instanceof Blob ? data : new Blob([data as BlobPart]);
  const total = blob.size;
  const chunk = options.chunkSize ?? 8 << 20;
  const call = async (init: RequestInit): Promise<Response> => {
    try {
      return await f(uploadUrl, { ...init, signal: options.signal ?? null });
    } catch (err) {
      throw new ConnectionFailed(`upload to ${uploadUrl} failed: ${String(err)}`, { cause: err });
    }
  };
  const head = await call({ method: "HEAD", headers: { "Tus-Resumable": "2.0.0" } });
  if (!head.ok) throw await apiErrorFrom(head);
  let offset = Number(head.headers.get("upload-offset") ?? 0);
  options.onProgress?.({ sent: offset, total });
  let conflicts = 0;
  while (offset < total) {
    const end = Math.min(offset + chunk, total);
    const res = await call({
      method: "PATCH",
      headers: {
        "Tus-Resumable": "2.0.0",
        "Upload-Offset": String(offset),
        "Upload-Length": String(total),
        "Content-Type": "application/offset+octet-stream",
      },
      body: blob.slice(offset, end),
    });
    if (res.status === 409 && conflicts++ < 3) {
      offset = Number(res.headers.get("upload-offset") ?? offset);
      continue;
    }
    if (!res.ok) throw await apiErrorFrom(res);
    offset = Number(res.headers.get("upload-offset") ?? end);
    options.onProgress?.({ sent: offset, total });
  }
}
