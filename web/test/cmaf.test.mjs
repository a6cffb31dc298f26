// The browser publisher's CMAF muxer (web/src/cmaf) on real encoder output: H.264 from
// ffmpeg's libx264 (Annex B, converted to the length-prefixed form WebCodecs hands out)
// and Opus packets from ffmpeg's libopus (Ogg). The output must pass the origin's own
// ingest checks (media.parse_object, via Python) and decode with ffmpeg.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { TrackMuxer, avcCodecString, catalogPayload, parseOpusHead } from "../dist/lib/cmaf/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const python = join(repo, ".venv", "bin", "python");
const ffmpeg = execFileSync(python, ["-c", "import imageio_ffmpeg;print(imageio_ffmpeg.get_ffmpeg_exe())"], {
  encoding: "utf8",
}).trim();

const FPS = 30;
const GOP = 15;

function run(args, input) {
  return execFileSync(ffmpeg, ["-hide_banner", "-v", "error", ...args], { input, maxBuffer: 64 << 20 });
}

/** NAL units of an Annex B stream. */
function nalUnits(buf) {
  const starts = [];
  for (let i = 0; i + 3 <= buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1) {
      starts.push(i + 3);
      i += 2;
    }
  }
  return starts.map((s, k) => {
    let end = k + 1 < starts.length ? starts[k + 1] - 3 : buf.length;
    while (end > s && buf[end - 1] === 0) end--; // 4-byte start codes / trailing zeros
    return buf.subarray(s, end);
  });
}

/** H.264 access units like WebCodecs' VideoEncoder ("avc" format): length-prefixed NALs + avcC. */
function h264Frames(seconds) {
  const annexB = run([
    "-f", "lavfi", "-i", `testsrc=size=320x240:rate=${FPS}`, "-t", String(seconds),
    "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", String(GOP), "-bf", "0",
    "-x264-params", "aud=1", "-f", "h264", "pipe:1",
  ]);
  let sps = null;
  let pps = null;
  const frames = [];
  let current = null;
  for (const nal of nalUnits(annexB)) {
    const type = nal[0] & 0x1f;
    if (type === 9) {
      current = { nals: [], keyframe: false };
      frames.push(current);
    } else if (type === 7) sps = nal;
    else if (type === 8) pps = nal;
    else if (current) {
      current.nals.push(nal);
      if (type === 5) current.keyframe = true;
    }
  }
  const avcC = Buffer.concat([
    Buffer.from([1, sps[1], sps[2], sps[3], 0xff, 0xe1, sps.length >> 8, sps.length & 0xff]), sps,
    Buffer.from([1, pps.length >> 8, pps.length & 0xff]), pps,
  ]);
  const data = frames
    .filter((f) => f.nals.length)
    .map((f) => ({
      keyframe: f.keyframe,
      data: new Uint8Array(Buffer.concat(f.nals.flatMap((n) => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(n.length);
        return [len, n];
      }))),
    }));
  return { avcC: new Uint8Array(avcC), frames: data };
}

/** Opus packets of an Ogg stream (RFC 7845), with its OpusHead. */
function opusPackets(seconds) {
  const ogg = run([
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", String(seconds),
    "-c:a", "libopus", "-b:a", "64k", "-ac", "2", "-f", "ogg", "pipe:1",
  ]);
  const packets = [];
  let partial = [];
  let at = 0;
  while (at < ogg.length) {
    assert.equal(ogg.toString("latin1", at, at + 4), "OggS");
    const count = ogg[at + 26];
    const table = ogg.subarray(at + 27, at + 27 + count);
    let body = at + 27 + count;
    for (const lace of table) {
      partial.push(ogg.subarray(body, body + lace));
      body += lace;
      if (lace < 255) {
        packets.push(new Uint8Array(Buffer.concat(partial)));
        partial = [];
      }
    }
    at = body;
  }
  const [head, , ...audio] = packets;
  return { head, packets: audio };
}

function pythonCheck(dir) {
  return JSON.parse(execFileSync(python, [join(here, "fixtures", "cmaf_check.py"), dir], { cwd: repo, encoding: "utf8" }));
}

function decodedFrames(file, stream) {
  const out = run(["-i", file, "-map", `0:${stream}`, "-f", "framecrc", "pipe:1"]).toString();
  return out.split("\n").filter((l) => l && !l.startsWith("#")).length;
}

test("H.264 + Opus: one object per frame, groups per GOP, valid for the ingest and ffmpeg", () => {
  const dir = mkdtempSync(join(tmpdir(), "cmaf-test-"));
  try {
    const video = h264Frames(2);
    const audio = opusPackets(2);
    const head = parseOpusHead(audio.head);
    assert.ok(head, "OpusHead parsed");
    assert.equal(head.channels, 2);

    const vmux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width: 320, height: 240, avcC: video.avcC });
    const amux = new TrackMuxer({ kind: "audio", trackId: 1, timescale: 48000, channels: head.channels, sampleRate: 48000, preSkip: head.preSkip });
    const codec = avcCodecString(video.avcC);
    assert.match(codec, /^avc1\.42[0-9a-f]{4}$/);
    const catalog = catalogPayload([
      { name: "video", role: "video", codec, bitrate: 500000, init: vmux.init, timescale: 90000, priority: 1,
        maxGroupDuration: 500, width: 320, height: 240, framerate: FPS },
      { name: "audio", role: "audio", codec: "opus", bitrate: 64000, init: amux.init, timescale: 48000, priority: 2,
        maxGroupDuration: 500, samplerate: 48000, channelConfig: "2" },
    ]);
    writeFileSync(join(dir, "catalog.json"), catalog);

    // The browser's way: one object per frame; the first object of a group is a keyframe.
    mkdirSync(join(dir, "video"));
    const vbytes = [vmux.init];
    video.frames.forEach((f, i) => {
      const us = Math.round((i * 1e6) / FPS);
      const obj = vmux.chunk([vmux.sample(f.data, us, Math.round(1e6 / FPS), f.keyframe)]);
      vbytes.push(obj);
      writeFileSync(join(dir, "video", `${String(i).padStart(4, "0")}${f.keyframe ? ".g" : ""}.m4s`), obj);
    });
    // Audio: a small chunk of 5 packets (100 ms) per object; every Opus packet is a SAP.
    mkdirSync(join(dir, "audio"));
    const abytes = [amux.init];
    for (let i = 0; i < audio.packets.length; i += 5) {
      const samples = audio.packets.slice(i, i + 5).map((p, k) => amux.sample(p, ((i + k) * 20000), 20000, true));
      const obj = amux.chunk(samples);
      abytes.push(obj);
      writeFileSync(join(dir, "audio", `${String(i).padStart(4, "0")}${i % 25 === 0 ? ".g" : ""}.m4s`), obj);
    }

    const summary = pythonCheck(dir);
    assert.equal(summary.video.codec, codec);
    assert.equal(summary.video.catalog_codec, codec);
    assert.equal(summary.video.width, 320);
    assert.equal(summary.video.height, 240);
    assert.equal(summary.video.samples, video.frames.length);
    assert.equal(summary.video.keyframes, Math.ceil(video.frames.length / GOP));
    assert.equal(summary.video.gaps, 0);
    assert.equal(summary.audio.codec, "opus");
    assert.equal(summary.audio.sample_rate, 48000);
    assert.equal(summary.audio.channels, 2);
    assert.equal(summary.audio.samples, audio.packets.length);
    assert.equal(summary.audio.gaps, 0);
    assert.equal(summary.audio.end, audio.packets.length * 960);

    const vfile = join(dir, "video.mp4");
    writeFileSync(vfile, Buffer.concat(vbytes));
    assert.equal(decodedFrames(vfile, "v"), video.frames.length);
    const afile = join(dir, "audio.mp4");
    writeFileSync(afile, Buffer.concat(abytes));
    assert.equal(decodedFrames(afile, "a"), audio.packets.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("capture timestamps: rebased to 0, strictly increasing, the gap (at least 1.5 frames at 30 fps) when the encoder gives no duration", () => {
  const mux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width: 16, height: 16, avcC: new Uint8Array([1, 0x42, 0, 0x1f, 0xff, 0xe0, 0]) });
  const a = mux.sample(new Uint8Array(1), 5_000_000, null, true);
  const b = mux.sample(new Uint8Array(1), 5_040_000, null, false);
  const c = mux.sample(new Uint8Array(1), 5_040_000, undefined, false);
  assert.equal(a.dts, 0);
  assert.equal(b.dts, 3600);
  assert.equal(b.duration, 4500); // 40 ms apart, at least 50 ms long (./cmaf_gap.test.mjs)
  assert.equal(c.dts, 3601);
  assert.throws(() => mux.chunk([]));
});
