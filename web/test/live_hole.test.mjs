// Jumping a hole in the live buffer (./src/streams/mse.ts holeAhead): the playhead stuck at
// the end of a range while a later range exists (a pause in the publisher's capture leaves a
// hole; the element waits there for good). The former check jumped only when the playhead
// was in no range at all, so it sat ~1.1 s until the far-behind seek.
import { test } from "node:test";
import assert from "node:assert/strict";

import { holeAhead } from "../dist/lib/streams/mse.js";

const ranges = (...r) => ({ length: r.length, start: (i) => r[i][0], end: (i) => r[i][1] });

test("at (or just before, or past) a range's end with a later range: its start", () => {
  const b = ranges([1.023, 2.671], [3.069, 3.24]);
  assert.equal(holeAhead(b, 2.671), 3.069); // stuck at the end (the bench's case)
  assert.equal(holeAhead(b, 2.64), 3.069); // within 50 ms of it
  assert.equal(holeAhead(b, 2.7), 3.069); // just past it (within the 0.1 s slack of "in a range")
  assert.equal(holeAhead(b, 2.9), 3.069); // in no range
});

test("media ahead, or no later range: nothing to jump", () => {
  const b = ranges([1.023, 2.671], [3.069, 3.24]);
  assert.equal(holeAhead(b, 2.5), null); // 171 ms still to play before the hole
  assert.equal(holeAhead(b, 3.22), null); // the live edge: the next append extends it
  assert.equal(holeAhead(ranges(), 1), null);
});
