/**
 * One broadcast of a MediaStream (./publisher.ts runs one at a time): capture, encoding
 * (WebCodecs H.264 + Opus, or the MediaRecorder fallback), CMAF muxing (../cmaf), the
 * catalog, and the MoQT tracks of the session it is bound to. A reconnect binds it to a
 * new session (`bind`): capture goes on, a keyframe is forced, group ids continue.
 */

import { catalogPayload, type CatalogEntry } from "../cmaf/catalog.js";
import { avcCodecString, parseOpusHead } from "../cmaf/init.js";
import { TrackMuxer, breaksAfter, minVideoDurationUs } from "../cmaf/muxer.js";
import { Fmp4Splitter, type SplitChunk } from "../cmaf/split.js";
import type { GroupWriter, MoqtSession, TrackWriter } from "../moqt/index.js";
import { PublishError } from "./errors.js";
import type { PublisherOptions } from "./publisher.js";

export interface PublisherStats {
  capture: "webcodecs" | "mediarecorder" | "";
  /** Sessions opened (1 + reconnects). */
  sessions: number;
  /** WebCodecs: median ms from a frame handed to the encoder to its chunk (last 120 frames). */
  encodeMs: number;
  videoFrames: number;
  audioFrames: number;
  droppedFrames: number;
  /** Keyframes forced after a capture gap (a player's MSE would drop the frames up to the next keyframe). */
  gapKeyframes: number;
  groups: number;
  bytes: number;
}

const CATALOG_PRIORITY = 0;
const AUDIO_PRIORITY = 1;
const VIDEO_PRIORITY = 2;
const START_TIMEOUT_MS = 15000;
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
export class Broadcast {
  readonly stats: PublisherStats = { capture: "", sessions: 0, encodeMs: 0, videoFrames: 0, audioFrames: 0, droppedFrames: 0, gapKeyframes: 0, groups: 0, bytes: 0 };
  private catalogTrack!: TrackWriter;
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

  /** The catalog is out (`publish()` resolved). */
  get isLive(): boolean {
    return this.live;
  }

  private flowWaiters: Array<() => void> = [];

  /** Resolves once media goes out to a subscriber of the current session's tracks (the
   * relay took this session over: the old one may close without ending the broadcast). */
  whenFlowing(): Promise<void> {
    return new Promise((resolve) => this.flowWaiters.push(resolve));
  }

  /** An object of `group` was written: does a subscriber get it (not only later groups)? */
  private flowed(track: TrackWriter, group: number): void {
    if (!this.flowWaiters.length) return;
    if ([...track.sinks.values()].some((s) => s.forward && s.fromGroup <= group)) for (const w of this.flowWaiters.splice(0)) w();
  }

  /** Before the catalog is out: `start()` rejects with `e`. */
  abortStart(e: PublishError): void {
    if (!this.live) this.rejectStarted(e);
  }
  private readers: Array<ReadableStreamDefaultReader<unknown>> = [];
  private encoders: Array<VideoEncoder | AudioEncoder> = [];
  private recorder: MediaRecorder | null = null;
  /** Group ids continue across sessions (a viewer that reconnects skips what it has). */
  private nextGroup = { video: 0, audio: 0, catalog: 0 };
  /** The next video frame is encoded as a keyframe (a new session starts a group). */
  private forceKey = false;
  /** Frames in the video encoder (timestamp -> when handed over) and recent encode times. */
  private readonly encoding = new Map<number, number>();
  private readonly encodeTimes: number[] = [];

  /** The tracks are served before PUBLISH_NAMESPACE: the relay subscribes as soon as it accepts. */
  constructor(
    session: MoqtSession,
    private readonly namespace: string,
    private readonly stream: MediaStream,
    private readonly opts: Required<Pick<PublisherOptions, "timesliceMs">> & PublisherOptions,
    private readonly fail: (e: PublishError) => void,
  ) {
    this.started = new Promise<void>((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.expected = new Set<string>();
    if (stream.getVideoTracks().length) this.expected.add("video");
    if (stream.getAudioTracks().length) this.expected.add("audio");
    this.bind(session);
  }

  /** Serve the tracks on `session` (the first one, or a reconnect's): media goes there from
   * the next group on (a keyframe is forced); the catalog is written again once known. */
  bind(session: MoqtSession): void {
    this.stats.sessions += 1;
    this.catalogTrack = session.serveTrack(this.namespace, ".catalog", { priority: CATALOG_PRIORITY });
    if (this.expected.has("video")) this.videoTrack = session.serveTrack(this.namespace, "video", { priority: VIDEO_PRIORITY });
    if (this.expected.has("audio")) this.audioTrack = session.serveTrack(this.namespace, "audio", { priority: AUDIO_PRIORITY });
    this.videoGroup = null;
    this.audioGroup = null;
    this.forceKey = true;
    if (this.catalogSent) this.sendCatalog(false);
  }

  private openGroup(kind: "video" | "audio" | "catalog", track: TrackWriter): GroupWriter {
    const group = track.openGroup(this.nextGroup[kind]);
    this.nextGroup[kind] = group.group + 1;
    return group;
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
    const minDurationUs = minVideoDurationUs(framerate);
    let lastKeyUs: number | null = null;
    let lastSentUs: number | null = null;
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
        // After a capture pause (or frames dropped below) longer than twice a sample's
        // shortest duration, a keyframe: a player's MSE would drop the frames up to the next one.
        const gap = lastSentUs !== null && breaksAfter(frame.timestamp - lastSentUs, minDurationUs);
        const key = lastKeyUs === null || this.forceKey || gap || frame.timestamp - lastKeyUs >= intervalUs;
        this.forceKey = false;
        if (!key && encoder.encodeQueueSize > 2) {
          this.stats.droppedFrames += 1; // the encoder is behind: keep latency bounded
          frame.close();
          continue;
        }
        if (key) lastKeyUs = frame.timestamp;
        if (gap) this.stats.gapKeyframes += 1;
        lastSentUs = frame.timestamp;
        this.encoding.set(frame.timestamp, performance.now());
        if (this.encoding.size > 60) this.encoding.delete(this.encoding.keys().next().value as number);
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
    const queued = this.encoding.get(chunk.timestamp);
    if (queued !== undefined) {
      this.encoding.delete(chunk.timestamp);
      this.encodeTimes.push(performance.now() - queued);
      if (this.encodeTimes.length > 120) this.encodeTimes.shift();
      const sorted = [...this.encodeTimes].sort((a, b) => a - b);
      this.stats.encodeMs = Math.round((sorted[sorted.length >> 1] as number) * 10) / 10;
    }
    const description = descriptionBytes(meta?.decoderConfig?.description);
    if (!this.videoMux) {
      if (!description) return; // wait for the first keyframe's avcC
      const width = meta?.decoderConfig?.codedWidth ?? info.width;
      const height = meta?.decoderConfig?.codedHeight ?? info.height;
      this.videoMux = new TrackMuxer(
        { kind: "video", trackId: 1, timescale: 90000, width, height, avcC: description },
        { minDurationUs: minVideoDurationUs(info.framerate) },
      );
      this.entries.set("video", {
        name: "video", role: "video", codec: avcCodecString(description), bitrate: info.bitrate,
        init: this.videoMux.init, timescale: 90000, priority: VIDEO_PRIORITY,
        maxGroupDuration: this.opts.timesliceMs, width, height, framerate: Math.round(info.framerate),
      }); // prettier-ignore
      this.maybeSendCatalog();
    }
    const key = chunk.type === "key";
    if (key) {
      this.videoGroup = this.openGroup("video", this.videoTrack);
      this.stats.groups += 1;
    }
    if (!this.videoGroup) return;
    const data = copyOut(chunk);
    const obj = this.videoMux.chunk([this.videoMux.sample(data, chunk.timestamp, chunk.duration, key)]);
    this.stats.videoFrames += 1;
    this.stats.bytes += obj.length;
    void this.videoGroup.write(obj).catch(() => undefined);
    this.flowed(this.videoTrack, this.videoGroup.group);
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
      this.audioGroup = this.openGroup("audio", this.audioTrack);
      this.audioGroupIndex = index;
    }
    const obj = this.audioMux.chunk([this.audioMux.sample(copyOut(chunk), chunk.timestamp, chunk.duration, true)]);
    this.stats.audioFrames += 1;
    this.stats.bytes += obj.length;
    void this.audioGroup.write(obj).catch(() => undefined);
    this.flowed(this.audioTrack, this.audioGroup.group);
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
        this.videoGroup = this.openGroup("video", track);
        this.stats.groups += 1;
        if (this.audioTrack) this.audioGroup = null;
      }
      if (kind === "audio" && (!this.audioGroup || !this.videoTrack)) this.audioGroup = this.openGroup("audio", track);
      const group = kind === "video" ? this.videoGroup : this.audioGroup;
      if (!group) continue;
      if (kind === "video") this.stats.videoFrames += 1;
      else this.stats.audioFrames += 1;
      this.stats.bytes += c.data.length;
      void group.write(c.data).catch(() => undefined);
      this.flowed(track, group.group);
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
    const group = this.openGroup("catalog", this.catalogTrack);
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
