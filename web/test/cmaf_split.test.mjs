// The MediaRecorder fallback's splitter (web/src/cmaf/split.ts): a multi-track fragmented
// MP4 whose moofs carry one traf per track (what Chromium's MediaRecorder writes; made
// here by ffmpeg, H.264 + Opus) becomes single-track CMAF that the origin's ingest
// accepts (media.parse_object) and ffmpeg decodes, fed in arbitrary pieces.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Fmp4Splitter, SplitError, catalogPayload } from "../dist/lib/cmaf/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const python = join(repo, ".venv", "bin", "python");
const ffmpeg = process.env.FFMPEG || execFileSync(python, ["-c", "import imageio_ffmpeg;print(imageio_ffmpeg.get_ffmpeg_exe())"], { encoding: "utf8" }).trim();

function run(args) {
  return execFileSync(ffmpeg, ["-hide_banner", "-v", "error", ...args], { maxBuffer: 64 << 20 });
}

function frameCount(file, stream) {
  const out = run(["-i", file, "-map", `0:${stream}`, "-f", "framecrc", "pipe:1"]).toString();
  return out.split("\n").filter((l) => l && !l.startsWith("#")).length;
}

test("a moof with a traf per track splits into per-track CMAF chunks", () => {
  const dir = mkdtempSync(join(tmpdir(), "cmaf-split-"));
  try {
    const source = run([
      "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
      "-t", "3", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p",
      "-c:a", "libopus", "-ac", "2", "-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_keyframe", "pipe:1",
    ]);
    const splitter = new Fmp4Splitter();
    const chunks = [];
    for (let i = 0; i < source.length; i += 4099) chunks.push(...splitter.feed(new Uint8Array(source.subarray(i, i + 4099))));
    const tracks = splitter.tracks;
    assert.ok(tracks);
    const video = tracks.find((t) => t.kind === "video");
    const audio = tracks.find((t) => t.kind === "audio");
    assert.match(video.codec, /^avc1\./);
    assert.equal(video.width, 320);
    assert.equal(audio.codec, "opus");
    assert.equal(audio.channels, 2);
    const names = new Map([[video.trackId, "video"], [audio.trackId, "audio"]]);
    writeFileSync(join(dir, "catalog.json"), catalogPayload([
      { name: "video", role: "video", codec: video.codec, bitrate: 1e6, init: video.init, timescale: video.timescale,
        priority: 2, maxGroupDuration: 1000, width: video.width, height: video.height },
      { name: "audio", role: "audio", codec: "opus", bitrate: 64000, init: audio.init, timescale: audio.timescale,
        priority: 1, maxGroupDuration: 1000, samplerate: 48000, channelConfig: "2" },
    ]));
    const files = { video: [video.init], audio: [audio.init] };
    for (const name of ["video", "audio"]) mkdirSync(join(dir, name));
    chunks.forEach((c, i) => {
      const name = names.get(c.trackId);
      files[name].push(c.data);
      // every video chunk starts a GOP (frag_keyframe): one group each
      writeFileSync(join(dir, name, `${String(i).padStart(4, "0")}${name === "video" && c.keyframe ? ".g" : ""}.m4s`), c.data);
    });
    assert.ok(chunks.filter((c) => names.get(c.trackId) === "video").every((c) => c.keyframe));
    const summary = JSON.parse(execFileSync(python, [join(here, "fixtures", "cmaf_check.py"), dir], { cwd: repo, encoding: "utf8" }));
    assert.equal(summary.video.samples, 75);
    assert.equal(summary.video.keyframes, 3);
    assert.equal(summary.video.gaps, 0);
    assert.equal(summary.audio.gaps, 0);
    assert.ok(summary.audio.samples >= 140, JSON.stringify(summary.audio));
    for (const [name, stream, count] of [["video", "v", 75], ["audio", "a", summary.audio.samples]]) {
      const file = join(dir, `${name}.mp4`);
      writeFileSync(file, Buffer.concat(files[name]));
      assert.equal(frameCount(file, stream), count);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("media before a header is refused", () => {
  const splitter = new Fmp4Splitter();
  const moof = new Uint8Array([0, 0, 0, 8, 0x6d, 0x6f, 0x6f, 0x66]);
  const mdat = new Uint8Array([0, 0, 0, 8, 0x6d, 0x64, 0x61, 0x74]);
  assert.throws(() => splitter.feed(new Uint8Array([...moof, ...mdat])), SplitError);
});
