// ISO BMFF parsing (src/streams/mse.ts) on real ffmpeg output (CLUTCHCALL_VOD_FIXTURE,
// a packaged asset: init.mp4 and <group>.m4s per track).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  baseMediaDecodeTime,
  codecFromInit,
  findBox,
  handlerFromInit,
  mimeFor,
  readBoxes,
  timescaleFromInit,
} from "../dist/lib/streams/mse.js";

const dir = process.env.CLUTCHCALL_VOD_FIXTURE;
assert.ok(dir, "set CLUTCHCALL_VOD_FIXTURE (run through tests/web/test_node_units.py)");
const catalog = JSON.parse(readFileSync(join(dir, "catalog.json"), "utf8"));
const read = (...p) => new Uint8Array(readFileSync(join(dir, ...p)));

test("init segments: codec string, handler and timescale match the catalog", () => {
  for (const t of catalog.tracks) {
    const init = read(t.name, "init.mp4");
    assert.deepEqual(readBoxes(init).map((b) => b.type).slice(0, 2), ["ftyp", "moov"]);
    assert.equal(codecFromInit(init), t.codec, t.name);
    assert.equal(handlerFromInit(init), t.role === "video" ? "vide" : "soun");
    assert.equal(timescaleFromInit(init), t.timescale);
  }
  assert.equal(mimeFor("video", "avc1.64001f"), 'video/mp4; codecs="avc1.64001f"');
});

test("media segments: moof+mdat whose tfdt is the timeline's time", () => {
  for (const t of catalog.tracks) {
    const scale = timescaleFromInit(read(t.name, "init.mp4"));
    for (const [ptsMs, [group]] of t.timeline) {
      const seg = read(t.name, `${group}.m4s`);
      const types = readBoxes(seg).map((b) => b.type);
      assert.ok(types.includes("moof") && types.includes("mdat"), types.join(","));
      assert.ok(findBox(seg, "moof/traf/tfdt"));
      const startMs = (baseMediaDecodeTime(seg) / scale) * 1000;
      // the timeline is in ms; audio starts may carry the encoder delay
      assert.ok(Math.abs(startMs - ptsMs) <= 50, `${t.name} group ${group}: tfdt ${startMs} ms vs ${ptsMs} ms`);
    }
  }
});

test("truncated or overrunning boxes are refused", () => {
  const init = read(catalog.tracks[0].name, "init.mp4");
  assert.throws(() => readBoxes(init.subarray(0, init.byteLength - 3)), RangeError);
  const bad = Uint8Array.from(init);
  bad[3] = 0xff; // ftyp claims more than it has
  assert.throws(() => readBoxes(bad.subarray(0, 40)), RangeError);
  assert.throws(() => codecFromInit(new Uint8Array([0, 0, 0, 8, 0x66, 0x72, 0x65, 0x65])), RangeError);
});
