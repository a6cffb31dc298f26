// A live lane's implied group end (./src/streams/live_lane.ts): the next group's keyframe is
// not held for the current group's end marker (a stream FIN a loaded relay forwarded up to
// 1.3-2.4 s late in the bench, after which the sequencer skipped the group) once nothing of
// the current group came for IMPLIED_END_MS.
import { test } from "node:test";
import assert from "node:assert/strict";

import { IMPLIED_END_MS, Lane } from "../dist/lib/streams/live_lane.js";

function arrive(lane, group, object, now) {
  lane.noteArrival(group, object, now);
  lane.seq.push({ group, object, payload: new Uint8Array([group, object]), arrived: now });
}
const ids = (objs) => objs.map((o) => `${o.group}/${o.object}`);

test("the next group's keyframe plays IMPLIED_END_MS after the current group fell silent", () => {
  assert.equal(IMPLIED_END_MS, 150);
  const lane = new Lane("video", { name: "video" });
  for (let i = 0; i < 3; i++) arrive(lane, 0, i, i * 33);
  assert.deepEqual(ids(lane.seq.poll(70)), ["0/0", "0/1", "0/2"]);
  arrive(lane, 1, 0, 100); // group 1's keyframe; group 0's FIN not here
  arrive(lane, 1, 1, 133);
  lane.impliedEnd(200);
  assert.deepEqual(ids(lane.seq.poll(200)), []); // held: group 0 may still have objects coming
  lane.impliedEnd(251);
  assert.deepEqual(ids(lane.seq.poll(251)), ["1/0", "1/1"]);
  assert.equal(lane.seq.skipped, 0); // ended, not skipped (no ABR loss signal)
  arrive(lane, 0, 3, 300); // a straggler of group 0: late, dropped
  assert.equal(lane.seq.late, 1);
  assert.equal(lane.groupEnded(0, 1400), 1300); // the FIN came 1.3 s after group 1's keyframe
});

test("a group still receiving objects is not ended; without the next keyframe nothing is implied", () => {
  const lane = new Lane("video", { name: "video" });
  arrive(lane, 4, 0, 0);
  lane.seq.poll(0);
  lane.impliedEnd(5000); // no next group yet
  arrive(lane, 4, 1, 5000);
  assert.deepEqual(ids(lane.seq.poll(5000)), ["4/1"]);
  arrive(lane, 5, 0, 5010);
  arrive(lane, 4, 2, 5100); // group 4 still flowing on its stream
  lane.impliedEnd(5200);
  assert.deepEqual(ids(lane.seq.poll(5200)), ["4/2"]);
  lane.impliedEnd(5260);
  assert.deepEqual(ids(lane.seq.poll(5260)), ["5/0"]);
});
