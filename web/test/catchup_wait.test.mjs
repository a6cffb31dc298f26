// A wait at the end of the media that ends in a later range is the publisher's capture
// pausing (a hole the player jumps), not arrival jitter: the "low" target keeps its value
// (./src/streams/catchup.ts waiting / resumed). Before, every dry `waiting` was a stall and
// put "low" back at 200 ms for 10-60 s.
import { test } from "node:test";
import assert from "node:assert/strict";

import { LiveEdgeController } from "../dist/lib/streams/catchup.js";

/** "low" stepped down on a quiet path (steady arrivals, 1 s of appends). */
function stepped() {
  const c = new LiveEdgeController({ targetMs: "low" });
  for (let i = 0; i < 300; i++) c.observeArrival(i / 30, i / 30 + 0.05);
  assert.ok(c.target < 0.2, `${c.target}`);
  return c;
}

test("a wait resolved by a later range (a capture pause): no stall, the target stays", () => {
  const c = stepped();
  const before = c.target;
  c.waiting(10.2);
  c.resumed(true);
  assert.equal(c.stalls, 0);
  assert.equal(c.target, before);
});

test("a wait resolved by the same range growing: a stall, back to 200 ms", () => {
  const c = stepped();
  c.waiting(10.2);
  assert.equal(c.stalls, 0); // not settled yet
  c.waiting(10.3); // the same wait
  c.resumed(false);
  assert.equal(c.stalls, 1);
  assert.equal(c.target, 0.2);
  c.resumed(false); // nothing pending
  assert.equal(c.stalls, 1);
});
