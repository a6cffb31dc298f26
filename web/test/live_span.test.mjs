// The live player's object span (./src/streams/live_lane.ts objectSpan): the tfdt step
// between consecutive video objects raises the live target for long objects; a skipped
// object or group is no span (it raised the "low" default target to 220-588 ms on a starved
// host when the span was read from the buffered end instead).
import { test } from "node:test";
import assert from "node:assert/strict";

import { TrackMuxer } from "../dist/lib/cmaf/index.js";
import { objectSpan } from "../dist/lib/streams/live_lane.js";

const avcC = new Uint8Array([1, 0x42, 0xe0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xe0, 0x1f, 1, 0, 2, 0x68, 0xce]);
const mux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width: 320, height: 240, avcC });
const frameUs = Math.round(1e6 / 30);
/** The object of frame `i` (a per-frame CMAF chunk at 30 fps). */
const frame = (i) => mux.chunk([mux.sample(new Uint8Array([0, 0, 0, 1, 0x65]), i * frameUs, frameUs, i % 30 === 0)]);

test("consecutive objects: one frame's span; a new group's first object continues", () => {
  let r = objectSpan(null, { group: 0, object: 0, payload: frame(0) }, mux.init);
  assert.equal(r.span, null);
  assert.deepEqual([r.at.group, r.at.object], [0, 0]);
  r = objectSpan(r.at, { group: 0, object: 1, payload: frame(1) }, mux.init);
  assert.ok(Math.abs(r.span - 1 / 30) < 1e-4, `${r.span}`);
  const last = { group: 0, object: 29, time: (29 * frameUs) / 1e6 };
  r = objectSpan(last, { group: 1, object: 0, payload: frame(30) }, mux.init);
  assert.ok(Math.abs(r.span - 1 / 30) < 1e-4, `${r.span}`);
});

test("a skipped object or group is no span; no init or no tfdt is nothing", () => {
  const at = { group: 3, object: 5, time: (95 * frameUs) / 1e6 };
  assert.equal(objectSpan(at, { group: 3, object: 7, payload: frame(97) }, mux.init).span, null);
  const skipped = objectSpan(at, { group: 5, object: 0, payload: frame(150) }, mux.init);
  assert.equal(skipped.span, null);
  assert.equal(skipped.at.group, 5); // measured on from there
  assert.deepEqual(objectSpan(at, { group: 3, object: 6, payload: frame(96) }, null), { at: null, span: null });
  assert.deepEqual(objectSpan(at, { group: 3, object: 6, payload: new Uint8Array([1, 2, 3]) }, mux.init), { at: null, span: null });
});
