/**
 * Publish a MediaStream (webcam + microphone) live over MoQT: recipe 1's
 * `dataPlane.publisher({ timesliceMs }).publish(inputId, streamKey, cam, namespace)`.
 *
 * 1. WebTransport to `relayUrl` (a POP carries publishers to an origin; an origin takes
 *    them directly) with the stream key as CLIENT_SETUP's AUTHORIZATION TOKEN, then
 *    PUBLISH_NAMESPACE `stream/<org>/<input>` with the key again. A development relay
 *    (loopback / IP literal) is pinned with `serverCertificateHashes`, given or read from
 *    the control plane's `GET /v1/relay/certificate`.
 * 2. Default path, WebCodecs: MediaStreamTrackProcessor -> VideoEncoder (H.264, a
 *    keyframe forced every `timesliceMs`) and AudioEncoder (Opus). Every encoded frame is
 *    one CMAF chunk (../cmaf) and one MoQT object; every keyframe starts a group, so a
 *    group is `timesliceMs` long and latency does not grow with it. Audio groups are cut
 *    every `timesliceMs` too (every Opus packet is a sync sample).
 * 3. Fallback where WebCodecs capture is missing (or `capture: "mediarecorder"`):
 *    MediaRecorder with an MP4 mime type and `videoKeyFrameIntervalDuration = timesliceMs`
 *    (Chromium hands out MP4 one GOP at a time whatever the timeslice); its fragments are
 *    split into single-track CMAF (../cmaf/split.ts), each GOP one group and one object.
 * 4. The catalog (`.catalog`, CMSF: each track's CMAF header as `initData`) is written as
 *    soon as every encoder described its output; the relay subscribes to it from the
 *    start and to each track from its next group.
 *
 * `publish()` resolves once the catalog is out (the broadcast goes live at the origin
 * with the next group); it rejects with a {@link PublishError}: `auth_failed` (the stream
 * key was refused), `refused` (the key does not own the namespace, the input is already
 * live), `not_found`, `network`, `unsupported` (no encoder for this browser / stream).
 * Later failures go to `onError`. `stop()` ends the tracks (PUBLISH_DONE) and the session.
 */

import { catalogPayload, type CatalogEntry } from "../cmaf/catalog.js";
import { avcCodecString, parseOpusHead } from "../cmaf/init.js";
import { TrackMuxer } from "../cmaf/muxer.js";
import { Fmp4Splitter, type SplitChunk } from "../cmaf/split.js";
import {
  MoqtSession,
  type NamespacePublication,
  RequestErrorCode,
  RequestRefused,
  SessionClosed,
  type SessionCloseInfo,
  type TrackWriter,
  type GroupWriter,
} from "../moqt/index.js";
import { PublishError, type PublishErrorReason } from "./errors.js";

export interface PublisherOptions {
  /** The relay (a POP, or an origin) as an https:// WebTransport URL. */
  relayUrl?: string;
  /** Group length in ms: a keyframe is forced this often (default 1000). */
  timesliceMs?: number;
  /** Video bit/s (default: 2.5 Mbit/s from 720p up, 1 Mbit/s below). */
  videoBitrate?: number;
  /** Audio bit/s (default 64 kbit/s). */
  audioBitrate?: number;
  /** Pin the relay's certificate (SHA-256, hex or bytes); development relays only. */
  serverCertificateHashes?: Array<string | Uint8Array>;
  /** Where `GET /v1/relay/certificate` is asked for a development relay's certificate. */
  apiBase?: string;
  /** "auto" (default): WebCodecs where the browser has it, else MediaRecorder; or force one. */
  capture?: "auto" | "webcodecs" | "mediarecorder";
  /** A failure after `publish()` resolved (the session was closed, an encoder failed). */
  onError?: (e: PublishError) => void;
}

export interface PublisherStats {
  capture: "webcodecs" | "mediarecorder" | "";
  videoFrames: number;
  audioFrames: number;
  droppedFrames: number;
  groups: number;
  bytes: number;
}

const CATALOG_PRIORITY = 0;
const AUDIO_PRIORITY = 1;
const VIDEO_PRIORITY = 2;
const START_TIMEOUT_MS = 15000;
const AUTH_CODES = new Set<number>([
  RequestErrorCode.UNAUTHORIZED,
  RequestErrorCode.MALFORMED_AUTH_TOKEN,
  RequestErrorCode.EXPIRED_AUTH_TOKEN,
]);

/** A thrown value as a PublishError. */
export function asPublishError(e: unknown, fallback: PublishErrorReason = "network"): PublishError {
  if (e instanceof PublishError) return e;
  if (e instanceof RequestRefused) {
    let reason: PublishErrorReason = "refused";
    if (AUTH_CODES.has(e.code) && /stream key/i.test(e.reason) && !/does not own/i.test(e.reason)) reason = "auth_failed";
    else if (e.code === RequestErrorCode.DOES_NOT_EXIST) reason = "not_found";
    else if (e.code === RequestErrorCode.NOT_SUPPORTED) reason = "unsupported";
    return new PublishError(reason, e.reason || e.message, { cause: e });
  }
  if (e instanceof SessionClosed) return closeError(e.info);
  return new PublishError(fallback, e instanceof Error ? e.message : String(e), { cause: e });
}

function closeError(info: SessionCloseInfo): PublishError {
  if (info.code === null) return new PublishError("network", info.reason || "the relay cannot be reached");
  const auth = info.code === 0x2 || /auth/i.test(info.reason);
  return new PublishError(auth ? "auth_failed" : "network", `the relay closed the session: ${info.reason || info.code}`);
}

// --- development relays: pin the certificate ------------------------------------------------

function isDevHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || /^[\d.]+$/.test(h) || h.includes(":");
}

function hexBytes(hex: string): Uint8Array {
  const clean = hex.replace(/[^0-9a-f]/gi, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

async function certificateHashes(opts: PublisherOptions, relay: URL): Promise<Uint8Array[]> {
  if (opts.serverCertificateHashes?.length) {
    return opts.serverCertificateHashes.map((h) => (typeof h === "string" ? hexBytes(h) : h));
  }
  if (!isDevHost(relay.hostname)) return [];
  const bases = new Set<string>();
  if (opts.apiBase) bases.add(opts.apiBase.replace(/\/$/, ""));
  try {
    const sdk = new URL(import.meta.url);
    if (sdk.protocol === "http:" || sdk.protocol === "https:") bases.add(sdk.origin);
  } catch {
    // bundled without a URL
  }
  if (typeof location !== "undefined" && /^https?:$/.test(location.protocol)) bases.add(location.origin);
  for (const base of bases) {
    try {
      const res = await fetch(`${base}/v1/relay/certificate`, { cache: "no-store", signal: AbortSignal.timeout(3000) });
      if (!res.ok) continue;
      const body = (await res.json()) as { certificate_hashes?: Array<{ algorithm?: string; value?: string }> };
      const hashes = (body.certificate_hashes ?? []).filter((h) => h.algorithm === "sha-256" && typeof h.value === "string");
      if (hashes.length) return hashes.map((h) => hexBytes(h.value as string));
    } catch {
      // not a control plane: try the next one
    }
  }
  return [];
}

// --- WebCodecs capture (types Chromium has and lib.dom does not declare yet) ----------------

interface TrackProcessor<T> {
  readable: ReadableStream<T>;
}
type TrackProcessorCtor = new <T>(init: { track: MediaStreamTrack }) => TrackProcessor<T>;

function trackProcessor(): TrackProcessorCtor | null {
  const ctor = (globalThis as { MediaStreamTrackProcessor?: TrackProcessorCtor }).MediaStreamTrackProcessor;
  return typeof ctor === "function" ? ctor : null;
}

const RECORDER_TYPES = ["video/mp4;codecs=avc1,opus", "video/mp4;codecs=avc1", "video/mp4"];

function recorderType(audio: boolean): string | null {
  if (typeof MediaRecorder === "undefined") return null;
  const types = audio ? RECORDER_TYPES : RECORDER_TYPES.slice(1);
  return types.find((t) => MediaRecorder.isTypeSupported(t)) ?? null;
}

function webCodecsSupported(): boolean {
  return trackProcessor() !== null && typeof VideoEncoder === "function" && typeof AudioEncoder === "function";
}

/** Constrained Baseline at the lowest level that holds the frame size (3.1, 4.0, 5.1). */
function avcCodec(width: number, height: number): string {
  const macroblocks = Math.ceil(width / 16) * Math.ceil(height / 16);
  const level = macroblocks <= 3600 ? 0x1f : macroblocks <= 8192 ? 0x28 : 0x33;
  return `avc1.42e0${level.toString(16)}`;
}

function copyOut(chunk: EncodedVideoChunk | EncodedAudioChunk): Uint8Array {
  const data = new Uint8Array(chunk.byteLength);
  chunk.copyTo(data);
  return data;
}

function descriptionBytes(d: AllowSharedBufferSource | undefined): Uint8Array | null {
  if (!d) return null;
  if (d instanceof ArrayBuffer) return new Uint8Array(d.slice(0));
  if (ArrayBuffer.isView(d)) return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
  return null;
}

/** One broadcast in progress (a Publisher runs one at a time). */
class Broadcast {
  readonly stats: PublisherStats = { capture: "", videoFrames: 0, audioFrames: 0, droppedFrames: 0, groups: 0, bytes: 0 };
  private catalogTrack: TrackWriter;
  private videoTrack: TrackWriter | null = null;
  private audioTrack: TrackWriter | null = null;
  private videoGroup: GroupWriter | null = null;
  private audioGroup: GroupWriter | null = null;
  private audioGroupIndex = -1;
  private audioStartUs: number | null = null;
  private videoMux: TrackMuxer | null = null;
  private audioMux: TrackMuxer | null = null;
  private entries = new Map<string, CatalogEntry>();
  private expected: Set<string>;
  private catalogSent = false;
  private readonly started: Promise<void>;
  private resolveStarted!: () => void;
  private rejectStarted!: (e: PublishError) => void;
  private stopped = false;
  private live = false;
  private readers: Array<ReadableStreamDefaultReader<unknown>> = [];
  private encoders: Array<VideoEncoder | AudioEncoder> = [];
  private recorder: MediaRecorder | null = null;

  /** The tracks are served before PUBLISH_NAMESPACE: the relay subscribes as soon as it accepts. */
  constructor(
    private readonly session: MoqtSession,
    private readonly namespace: string,
    private readonly stream: MediaStream,
    private readonly opts: Required<Pick<PublisherOptions, "timesliceMs">> & PublisherOptions,
    private readonly fail: (e: PublishError) => void,
  ) {
    this.started = new Promise<void>((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.catalogTrack = session.serveTrack(namespace, ".catalog", { priority: CATALOG_PRIORITY });
    this.expected = new Set<string>();
    if (stream.getVideoTracks().length) {
      this.expected.add("video");
      this.videoTrack = session.serveTrack(namespace, "video", { priority: VIDEO_PRIORITY });
    }
    if (stream.getAudioTracks().length) {
      this.expected.add("audio");
      this.audioTrack = session.serveTrack(namespace, "audio", { priority: AUDIO_PRIORITY });
    }
  }

  async start(): Promise<void> {
    if (this.expected.size === 0) throw new PublishError("unsupported", "the MediaStream has no video or audio track");
    const capture = this.opts.capture ?? "auto";
    if (capture !== "mediarecorder" && webCodecsSupported()) {
      this.stats.capture = "webcodecs";
      const video = this.stream.getVideoTracks()[0];
      const audio = this.stream.getAudioTracks()[0];
      if (video) this.startVideo(video);
      if (audio) this.startAudio(audio);
    } else if (capture !== "webcodecs" && recorderType(this.expected.has("audio"))) {
      this.stats.capture = "mediarecorder";
      this.startRecorder(recorderType(this.expected.has("audio")) as string);
    } else {
      throw new PublishError("unsupported", "this browser has neither WebCodecs capture nor an MP4 MediaRecorder");
    }
    const timer = setTimeout(
      () => this.error(new PublishError("unsupported", `no encoded media within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    try {
      await this.started;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Before `publish()` resolved, its rejection; after, the publisher's `onError`. */
  private error(e: PublishError): void {
    if (this.stopped) return;
    if (this.live) this.fail(e);
    else this.rejectStarted(e);
  }

  // --- video ----------------------------------------------------------------------------

  private startVideo(track: MediaStreamTrack): void {
    const settings = track.getSettings();
    const width = (settings.width ?? 640) & ~1;
    const height = (settings.height ?? 480) & ~1;
    const framerate = settings.frameRate ?? 30;
    const bitrate = this.opts.videoBitrate ?? (width * height >= 1280 * 720 ? 2_500_000 : 1_000_000);
    const codec = avcCodec(width, height);
    const encoder = new VideoEncoder({
      output: (chunk, meta) => this.onVideo(chunk, meta, { width, height, framerate, bitrate }),
      error: (e) => this.error(new PublishError("unsupported", `video encoder: ${e.message}`)),
    });
    encoder.configure({
      codec, width, height, bitrate, framerate,
      latencyMode: "realtime",
      avc: { format: "avc" },
    } as VideoEncoderConfig); // prettier-ignore
    this.encoders.push(encoder);
    const Processor = trackProcessor() as TrackProcessorCtor;
    const reader = new Processor<VideoFrame>({ track }).readable.getReader();
    this.readers.push(reader as ReadableStreamDefaultReader<unknown>);
    const intervalUs = this.opts.timesliceMs * 1000;
    let lastKeyUs: number | null = null;
    void (async () => {
      for (;;) {
        let frame: VideoFrame | undefined;
        try {
          const next = await reader.read();
          if (next.done) return;
          frame = next.value;
        } catch {
          return;
        }
        if (this.stopped || encoder.state !== "configured") {
          frame.close();
          return;
        }
        const key = lastKeyUs === null || frame.timestamp - lastKeyUs >= intervalUs;
        if (!key && encoder.encodeQueueSize > 2) {
          this.stats.droppedFrames += 1; // the encoder is behind: keep latency bounded
          frame.close();
          continue;
        }
        if (key) lastKeyUs = frame.timestamp;
        try {
          encoder.encode(frame, { keyFrame: key });
        } finally {
          frame.close();
        }
      }
    })();
  }

  private onVideo(
    chunk: EncodedVideoChunk,
    meta: EncodedVideoChunkMetadata | undefined,
    info: { width: number; height: number; framerate: number; bitrate: number },
  ): void {
    if (this.stopped || !this.videoTrack) return;
    const description = descriptionBytes(meta?.decoderConfig?.description);
    if (!this.videoMux) {
      if (!description) return; // wait for the first keyframe's avcC
      const width = meta?.decoderConfig?.codedWidth ?? info.width;
      const height = meta?.decoderConfig?.codedHeight ?? info.height;
      this.videoMux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width, height, avcC: description });
      this.entries.set("video", {
        name: "video", role: "video", codec: avcCodecString(description), bitrate: info.bitrate,
        init: this.videoMux.init, timescale: 90000, priority: VIDEO_PRIORITY,
        maxGroupDuration: this.opts.timesliceMs, width, height, framerate: Math.round(info.framerate),
      }); // prettier-ignore
      this.maybeSendCatalog();
    }
    const key = chunk.type === "key";
    if (key) {
      this.videoGroup = this.videoTrack.openGroup();
      this.stats.groups += 1;
    }
    if (!this.videoGroup) return;
    const data = copyOut(chunk);
    const obj = this.videoMux.chunk([this.videoMux.sample(data, chunk.timestamp, chunk.duration, key)]);
    this.stats.videoFrames += 1;
    this.stats.bytes += obj.length;
    void this.videoGroup.write(obj).catch(() => undefined);
  }

  // --- audio ----------------------------------------------------------------------------

  private startAudio(track: MediaStreamTrack): void {
    const bitrate = this.opts.audioBitrate ?? 64_000;
    const encoder = new AudioEncoder({
      output: (chunk, meta) => this.onAudio(chunk, meta, bitrate),
      error: (e) => this.error(new PublishError("unsupported", `audio encoder: ${e.message}`)),
    });
    this.encoders.push(encoder);
    const Processor = trackProcessor() as TrackProcessorCtor;
    const reader = new Processor<AudioData>({ track }).readable.getReader();
    this.readers.push(reader as ReadableStreamDefaultReader<unknown>);
    void (async () => {
      for (;;) {
        let data: AudioData | undefined;
        try {
          const next = await reader.read();
          if (next.done) return;
          data = next.value;
        } catch {
          return;
        }
        if (this.stopped || encoder.state === "closed") {
          data.close();
          return;
        }
        if (encoder.state === "unconfigured") {
          // The encoder takes the capture's own rate and channel count (Opus resamples to 48 kHz).
          encoder.configure({ codec: "opus", sampleRate: data.sampleRate, numberOfChannels: data.numberOfChannels, bitrate });
        }
        try {
          encoder.encode(data);
        } finally {
          data.close();
        }
      }
    })();
  }

  private onAudio(chunk: EncodedAudioChunk, meta: EncodedAudioChunkMetadata | undefined, bitrate: number): void {
    if (this.stopped || !this.audioTrack) return;
    if (!this.audioMux) {
      const config = meta?.decoderConfig;
      const head = parseOpusHead(descriptionBytes(config?.description));
      const channels = head?.channels ?? config?.numberOfChannels ?? 1;
      this.audioMux = new TrackMuxer({
        kind: "audio", trackId: 1, timescale: 48000, channels,
        // dOps InputSampleRate: informational per RFC 7845, but Chromium's MSE plays the track
        // at that rate, so a 44.1 kHz microphone must still say 48000 (Opus decodes at 48 kHz).
        sampleRate: 48000, preSkip: head?.preSkip ?? 0,
      }); // prettier-ignore
      this.entries.set("audio", {
        name: "audio", role: "audio", codec: "opus", bitrate, init: this.audioMux.init, timescale: 48000,
        priority: AUDIO_PRIORITY, maxGroupDuration: this.opts.timesliceMs, samplerate: 48000,
        channelConfig: String(channels),
      }); // prettier-ignore
      this.maybeSendCatalog();
    }
    if (this.audioStartUs === null) this.audioStartUs = chunk.timestamp;
    const index = Math.floor((chunk.timestamp - this.audioStartUs) / (this.opts.timesliceMs * 1000));
    if (!this.audioGroup || index > this.audioGroupIndex) {
      this.audioGroup = this.audioTrack.openGroup();
      this.audioGroupIndex = index;
    }
    const obj = this.audioMux.chunk([this.audioMux.sample(copyOut(chunk), chunk.timestamp, chunk.duration, true)]);
    this.stats.audioFrames += 1;
    this.stats.bytes += obj.length;
    void this.audioGroup.write(obj).catch(() => undefined);
  }

  // --- MediaRecorder fallback --------------------------------------------------------

  private startRecorder(mimeType: string): void {
    const t = this.opts.timesliceMs;
    const recorder = new MediaRecorder(this.stream, {
      mimeType,
      videoBitsPerSecond: this.opts.videoBitrate ?? 1_000_000,
      audioBitsPerSecond: this.opts.audioBitrate ?? 64_000,
      videoKeyFrameIntervalDuration: t,
    } as MediaRecorderOptions);
    this.recorder = recorder;
    const splitter = new Fmp4Splitter();
    let queue = Promise.resolve();
    recorder.ondataavailable = (event: BlobEvent) => {
      queue = queue
        .then(async () => {
          const bytes = new Uint8Array(await event.data.arrayBuffer());
          if (!this.stopped) this.onRecorded(splitter, splitter.feed(bytes));
        })
        .catch((e: unknown) => this.error(new PublishError("unsupported", `MediaRecorder output: ${String(e)}`)));
    };
    recorder.onerror = () => this.error(new PublishError("unsupported", "MediaRecorder failed"));
    recorder.start(t);
  }

  private onRecorded(splitter: Fmp4Splitter, chunks: SplitChunk[]): void {
    const tracks = splitter.tracks;
    if (!tracks) return;
    const kinds = new Map<number, "video" | "audio">();
    for (const kind of ["video", "audio"] as const) {
      const track = tracks.find((x) => x.kind === kind);
      if (!track) continue;
      kinds.set(track.trackId, kind);
      if (!this.entries.has(kind)) {
        const video = kind === "video";
        this.entries.set(kind, {
          name: kind, role: kind, codec: track.codec, init: track.init, timescale: track.timescale,
          bitrate: video ? (this.opts.videoBitrate ?? 1_000_000) : (this.opts.audioBitrate ?? 64_000),
          priority: video ? VIDEO_PRIORITY : AUDIO_PRIORITY, maxGroupDuration: this.opts.timesliceMs,
          ...(video ? { width: track.width ?? 0, height: track.height ?? 0 }
                    : { samplerate: track.sampleRate ?? 48000, channelConfig: String(track.channels ?? 1) }),
        }); // prettier-ignore
      }
    }
    for (const name of [...this.expected]) if (!this.entries.has(name)) this.expected.delete(name);
    this.maybeSendCatalog();
    for (const c of chunks) {
      const kind = kinds.get(c.trackId);
      const track = kind === "video" ? this.videoTrack : kind === "audio" ? this.audioTrack : null;
      if (!kind || !track) continue;
      // A group per GOP: a video keyframe opens one, and the audio follows the video's groups.
      if (kind === "video" && c.keyframe) {
        this.videoGroup = track.openGroup();
        this.stats.groups += 1;
        if (this.audioTrack) this.audioGroup = null;
      }
      if (kind === "audio" && (!this.audioGroup || !this.videoTrack)) this.audioGroup = track.openGroup();
      const group = kind === "video" ? this.videoGroup : this.audioGroup;
      if (!group) continue;
      if (kind === "video") this.stats.videoFrames += 1;
      else this.stats.audioFrames += 1;
      this.stats.bytes += c.data.length;
      void group.write(c.data).catch(() => undefined);
    }
  }

  // --- catalog --------------------------------------------------------------------------

  private maybeSendCatalog(): void {
    if (this.catalogSent || [...this.expected].some((name) => !this.entries.has(name))) return;
    this.catalogSent = true;
    this.sendCatalog(false);
    this.live = true;
    this.resolveStarted();
  }

  private sendCatalog(complete: boolean): void {
    const order = ["video", "audio"].filter((n) => this.entries.has(n));
    const payload = catalogPayload(order.map((n) => this.entries.get(n) as CatalogEntry), { complete });
    const group = this.catalogTrack.openGroup();
    void group.write(payload).then(() => group.close()).catch(() => undefined);
  }

  // --- the end --------------------------------------------------------------------------

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const reader of this.readers) void reader.cancel().catch(() => undefined);
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    for (const encoder of this.encoders) {
      try {
        if (encoder.state !== "closed") encoder.close();
      } catch {
        // already closed
      }
    }
    if (this.catalogSent) this.sendCatalog(true);
    const tracks = [this.videoTrack, this.audioTrack, this.catalogTrack];
    await Promise.allSettled(tracks.map((t) => t?.end("publisher stopped")));
  }
}

/** A webcam/MediaStream publisher (see the module docstring). */
export class Publisher {
  readonly options: PublisherOptions;
  private session: MoqtSession | null = null;
  private broadcast: Broadcast | null = null;
  private ns: NamespacePublication | null = null;
  private stopping = false;

  constructor(options: PublisherOptions = {}) {
    this.options = options;
  }

  /** Connect, prove `streamKey` for `namespace`, and stream `mediaStream` (see the module docstring). */
  async publish(inputId: string, streamKey: string, mediaStream: MediaStream, namespace?: string): Promise<void> {
    if (this.session) throw new PublishError("refused", "this publisher is already publishing: stop() it first");
    const timesliceMs = this.options.timesliceMs ?? 1000;
    if (!Number.isFinite(timesliceMs) || timesliceMs < 50 || timesliceMs > 10000) {
      throw new PublishError("unsupported", "timesliceMs must be from 50 to 10000");
    }
    if (!this.options.relayUrl) throw new PublishError("unsupported", "no relayUrl: give it to Streams({ relayUrl }) or the publisher");
    if (!inputId || !streamKey) throw new PublishError("refused", "inputId and streamKey are required");
    const ns = namespace ?? "";
    const fields = ns.split("/").filter(Boolean);
    if (fields.length !== 3 || fields[0] !== "stream" || fields[2] !== inputId) {
      throw new PublishError("refused", `namespace must be stream/<org_id>/${inputId}, got ${JSON.stringify(namespace ?? null)}`);
    }
    let relay: URL;
    try {
      relay = new URL(this.options.relayUrl);
    } catch {
      throw new PublishError("network", `bad relayUrl ${JSON.stringify(this.options.relayUrl)}`);
    }
    this.stopping = false;
    let session: MoqtSession;
    try {
      const hashes = await certificateHashes(this.options, relay);
      session = await MoqtSession.connect(relay.toString(), {
        token: streamKey,
        ...(hashes.length ? { serverCertificateHashes: hashes } : {}),
      });
    } catch (e) {
      throw asPublishError(e);
    }
    this.session = session;
    try {
      const namespace = fields.join("/");
      const broadcast = new Broadcast(session, namespace, mediaStream, { ...this.options, timesliceMs }, (e) =>
        this.failed(e),
      );
      this.broadcast = broadcast;
      this.ns = await session.publishNamespace(namespace, { authToken: streamKey });
      void session.closed.then((info) => {
        if (!this.stopping && this.session === session) this.failed(closeError(info));
      });
      await broadcast.start();
    } catch (e) {
      const error = asPublishError(e);
      this.teardown("publish failed");
      throw error;
    }
  }

  /** Counters of the broadcast in progress (or the last one). */
  stats(): PublisherStats {
    return this.broadcast?.stats ?? { capture: "", videoFrames: 0, audioFrames: 0, droppedFrames: 0, groups: 0, bytes: 0 };
  }

  /** End the broadcast: the final catalog, PUBLISH_DONE on every track, the session closed. */
  stop(): void {
    this.teardown("publisher stopped");
  }

  private failed(e: PublishError): void {
    if (this.stopping) return;
    this.teardown(e.message);
    this.options.onError?.(e);
  }

  private teardown(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    const session = this.session;
    const broadcast = this.broadcast;
    const ns = this.ns;
    this.session = null;
    this.ns = null;
    if (!session) return;
    void (async () => {
      try {
        await broadcast?.stop();
        ns?.done();
      } catch {
        // the session may be gone already
      }
      try {
        session.close(0, reason.slice(0, 200));
      } catch {
        // already closed
      }
    })();
  }
}
