// The live player's default target (./src/streams/catchup.ts, targetLatencyMs "low"): 200 ms,
// stepping down towards a 130 ms floor while the arrival jitter stays well below, back up at
// once on a stall (held) or when the jitter grows; never over 200 ms.
import { test } from "node:test";
import assert from "node:assert/strict";

import { LiveEdgeController, DEFAULT_FLOOR_MS } from "../dist/lib/streams/catchup.js";

const frame = 1 / 30;

/** Appends of per-frame objects at 30 fps from frame `start`, each `delay(i)` seconds late. */
function feed(c, n, delay, start = 0) {
  for (let i = start; i < start + n; i++) {
    const end = (i + 1) * frame;
    c.observeAppend(frame);
    c.observeArrival(end, 100 + end + delay(i));
  }
  return start + n;
}

const ms = (c) => Math.round(c.target * 1000);

test("the default is low: 200 ms until enough appends, then down 10 ms per 0.5 s to the floor", () => {
  const c = new LiveEdgeController();
  assert.equal(c.low, true);
  assert.equal(c.auto, false);
  assert.equal(DEFAULT_FLOOR_MS, 130);
  let i = feed(c, 15, () => 0.004 * (Math.random() < 0.5));
  assert.equal(ms(c), 200); // no jitter measure yet
  i = feed(c, 30, (k) => 0.004 * (k % 2), i); // ~1 s more
  assert.ok(ms(c) < 200 && ms(c) >= 170, `${ms(c)}`);
  i = feed(c, 300, (k) => 0.004 * (k % 2), i); // 10 s of a quiet path
  assert.equal(ms(c), 130);
});

test("a jitter that is not well below the next step holds the target where it is", () => {
  const c = new LiveEdgeController();
  // every tenth append 80 ms late: jitter 80 ms, the target may go down to 160 ms (2x jitter)
  feed(c, 450, (k) => (k % 10 === 0 ? 0.08 : 0));
  assert.equal(ms(c), 160);
  // a fixed target ignores it all
  const fixed = new LiveEdgeController({ targetMs: 200 });
  assert.equal(fixed.low, false);
  feed(fixed, 450, () => 0);
  assert.equal(ms(fixed), 200);
});

test("a stall puts it back at 200 ms at once and holds it there 10 s, longer for stalls in a row", () => {
  const c = new LiveEdgeController();
  let i = feed(c, 450, () => 0);
  assert.equal(ms(c), 130);
  c.stalled(100 + i * frame);
  assert.equal(ms(c), 200);
  assert.equal(c.stalls, 1);
  i = feed(c, 240, () => 0, i); // 8 s: still held
  assert.equal(ms(c), 200);
  i = feed(c, 90, () => 0, i); // past 10 s: stepping down again
  assert.ok(ms(c) < 200, `${ms(c)}`);
  c.stalled(100 + i * frame); // a second stall soon after: held 20 s
  i = feed(c, 450, () => 0, i); // 15 s
  assert.equal(ms(c), 200);
  i = feed(c, 450, () => 0, i);
  assert.equal(ms(c), 130);
});

test("a growing jitter raises the target at once, never over 200 ms", () => {
  const c = new LiveEdgeController();
  let i = feed(c, 450, () => 0);
  assert.equal(ms(c), 130);
  i = feed(c, 40, (k) => (k % 5 === 0 ? 0.09 : 0), i); // jitter 90 ms: needs 180 ms
  assert.equal(ms(c), 180);
  feed(c, 150, (k) => (k % 5 === 0 ? 0.4 : 0), i); // far over: the ceiling, not more
  assert.equal(ms(c), 200);
});

test("longer objects still raise it (one object + 100 ms); bad floors are refused", () => {
  const c = new LiveEdgeController();
  for (let i = 0; i < 20; i++) c.observeAppend(0.5);
  assert.ok(Math.abs(c.target - 0.6) < 1e-6, `${c.target}`);
  assert.throws(() => new LiveEdgeController({ floorMs: 300 }), RangeError);
  assert.throws(() => new LiveEdgeController({ targetMs: "lowest" }), RangeError);
  const custom = new LiveEdgeController({ targetMs: "low", floorMs: 150 });
  feed(custom, 450, () => 0);
  assert.equal(ms(custom), 150);
});
