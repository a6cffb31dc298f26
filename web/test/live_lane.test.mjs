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

import { TrackMuxer } from "../dist/lib/cmaf/index.js";

const avcC = new Uint8Array([1, 0x42, 0xe0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xe0, 0x1f, 1, 0, 2, 0x68, 0xce]);
let mux = null;
/** A lane with a fresh muxer's init (decode times start at 0 again). */
function videoLane() {
  mux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width: 320, height: 240, avcC });
  return new Lane("video", { name: "video", initData: mux.init });
}
const frameUs = Math.round(1e6 / 30);
/** Frame `i` as a per-frame CMAF object (30 fps, a group every 30 frames) arriving at `now`. */
function frame(lane, i, now) {
  const group = Math.floor(i / 30);
  const payload = mux.chunk([mux.sample(new Uint8Array([0, 0, 0, 1, 0x65]), i * frameUs, frameUs, i % 30 === 0)]);
  lane.noteArrival(group, i % 30, now, payload);
  lane.seq.push({ group, object: i % 30, payload, arrived: now });
}

test("a next keyframe that follows the group's last object in media time ends the group at once", () => {
  const lane = videoLane();
  for (let i = 0; i < 30; i++) frame(lane, i, i * 33);
  assert.equal(lane.seq.poll(990).length, 30);
  frame(lane, 30, 1000); // group 1's keyframe, one frame after group 0's last: nothing missing
  lane.impliedEnd(1001);
  assert.deepEqual(ids(lane.seq.poll(1001)), ["1/0"]);
  assert.equal(lane.seq.skipped, 0);
});

test("a gap before the next keyframe (group 0's last objects missing) waits IMPLIED_END_MS", () => {
  const lane = videoLane();
  for (let i = 0; i < 27; i++) frame(lane, i, i * 33); // objects 27-29 still on their way
  lane.seq.poll(900);
  frame(lane, 30, 1000);
  lane.impliedEnd(1001);
  assert.deepEqual(ids(lane.seq.poll(1001)), []);
  frame(lane, 27, 1050); // a straggler within the wait: played
  assert.deepEqual(ids(lane.seq.poll(1050)), ["0/27"]);
  lane.impliedEnd(1150);
  assert.deepEqual(ids(lane.seq.poll(1150)), []);
  lane.impliedEnd(1201);
  assert.deepEqual(ids(lane.seq.poll(1201)), ["1/0"]);
});
