// The live player's automatic target (./src/streams/catchup.ts, targetLatencyMs "auto"):
// the arrival jitter + 50 ms, from 100 ms to 1 s; 200 ms until 20 appends were seen.
import { test } from "node:test";
import assert from "node:assert/strict";

import { LiveEdgeController } from "../dist/lib/streams/catchup.js";

const frame = 1 / 30;

/** Appends of per-frame objects at 30 fps, each `delay(i)` seconds late on the wire. */
function feed(c, n, delay, start = 0) {
  for (let i = start; i < start + n; i++) {
    const end = (i + 1) * frame;
    c.observeAppend(frame);
    c.observeArrival(end, 100 + end + delay(i));
  }
}

test("a quiet path: the target comes down from 200 ms to the floor", () => {
  const c = new LiveEdgeController({ targetMs: "auto" });
  assert.equal(c.auto, true);
  feed(c, 10, () => 0.005);
  assert.equal(c.target, 0.2); // not enough appends yet
  feed(c, 100, (i) => 0.005 * (i % 3), 10);
  assert.ok(c.jitter !== null && c.jitter <= 0.011, `${c.jitter}`);
  assert.equal(c.target, 0.1);
});

test("a jittery path: the target covers the 95th percentile of the lateness", () => {
  const c = new LiveEdgeController({ targetMs: "auto" });
  // one append in ten comes 250 ms late (a loaded host), the rest on time
  feed(c, 150, (i) => (i % 10 === 0 ? 0.25 : 0));
  assert.ok(Math.abs(c.jitter - 0.25) < 1e-6, `${c.jitter}`);
  assert.ok(Math.abs(c.target - 0.3) < 1e-6, `${c.target}`);
  const huge = new LiveEdgeController({ targetMs: "auto" });
  feed(huge, 150, (i) => (i % 4 === 0 ? 0.99 : 0));
  assert.equal(huge.target, 1.0); // capped at 1 s
});

test("a new timeline (the publisher restarted its clock) restarts the measurement", () => {
  const c = new LiveEdgeController({ targetMs: "auto" });
  feed(c, 50, () => 0);
  feed(c, 10, () => 2); // 2 s late on a loaded host: jitter, not a new timeline
  assert.ok(c.jitter > 1.9, `${c.jitter}`);
  c.observeArrival(1000, 100); // media time far from the wall-clock offset seen so far
  assert.equal(c.jitter, null);
});

test("a fixed target ignores the jitter", () => {
  const c = new LiveEdgeController({ targetMs: 150 });
  assert.equal(c.auto, false);
  feed(c, 150, (i) => (i % 10 === 0 ? 0.5 : 0));
  assert.equal(c.target, 0.15);
});
