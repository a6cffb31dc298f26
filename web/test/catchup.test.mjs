// The live player's catch-up controller (./src/streams/catchup.ts): the playhead is held a
// small explicit distance behind the newest buffered media.
import { test } from "node:test";
import assert from "node:assert/strict";

import { LiveEdgeController, DEFAULT_TARGET_LATENCY_MS } from "../dist/lib/streams/catchup.js";

test("at or under the target: normal speed, no seek", () => {
  const c = new LiveEdgeController();
  assert.equal(DEFAULT_TARGET_LATENCY_MS, 200);
  assert.equal(c.target, 0.2);
  assert.deepEqual(c.decide(0.1, 10), { rate: 1, seekTo: null });
  assert.deepEqual(c.decide(0.24, 10), { rate: 1, seekTo: null }); // one sample over: not behind yet
});

test("a little behind: 1.05-1.15x until back at the target (hysteresis)", () => {
  const c = new LiveEdgeController({ targetMs: 200 });
  const a = c.decide(0.3, 10);
  assert.equal(a.seekTo, null);
  assert.ok(a.rate >= 1.05 && a.rate <= 1.15, `${a.rate}`);
  assert.ok(c.decide(0.22, 10).rate > 1); // still catching up: under the slack but over the target
  assert.equal(c.decide(0.19, 10).rate, 1);
  for (let i = 0; i < 4; i++) c.decide(0.9, 10); // judged on the last ~1 s of samples
  assert.equal(c.decide(0.9, 10).rate, 1.15); // capped
});

test("far behind: a seek to the target behind the live edge", () => {
  const c = new LiveEdgeController({ targetMs: 200 });
  const a = c.decide(1.5, 42);
  assert.equal(a.rate, 1);
  assert.ok(Math.abs(a.seekTo - 41.8) < 1e-9, `${a.seekTo}`);
  // The old player aimed at 1.5 s and left 1.3 s of buffer alone; now that is far behind.
  assert.notEqual(new LiveEdgeController().decide(1.3, 42).seekTo, null);
});

test("objects longer than the target raise it to one object + 100 ms", () => {
  const c = new LiveEdgeController({ targetMs: 150 });
  for (let i = 0; i < 20; i++) c.observeAppend(0.5);
  assert.ok(Math.abs(c.target - 0.6) < 1e-6, `${c.target}`);
  assert.equal(c.decide(0.55, 10).rate, 1); // one object ahead is not "behind"
  const frames = new LiveEdgeController({ targetMs: 150 });
  for (let i = 0; i < 20; i++) frames.observeAppend(1 / 30);
  assert.equal(frames.target, 0.15); // per-frame objects: the target stands
  frames.observeAppend(30); // a jump, not a span
  frames.observeAppend(-1);
  assert.equal(frames.target, 0.15);
});

test("a bad target is a RangeError", () => {
  assert.throws(() => new LiveEdgeController({ targetMs: -1 }), RangeError);
  assert.throws(() => new LiveEdgeController({ targetMs: Number.NaN }), RangeError);
  assert.equal(new LiveEdgeController({ targetMs: 0 }).target, 0);
});
