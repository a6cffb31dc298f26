// A video sample's duration in the CMAF muxer (./src/cmaf/muxer.ts). A Media Source
// Extensions player (Chromium's included) takes a decode-time jump of more than twice the
// previous frame's duration for a discontinuity and drops every frame after it until the
// next keyframe. The muxer wrote the gap to the previous frame as the duration, so a
// capture whose frames come 17 / 33 / 50 ms apart broke the timeline all the time
// (Chromium, the SDK's muxer: 4 of 45 frames presented, buffered [0, 0.117], [0.667, ...]).
import { test } from "node:test";
import assert from "node:assert/strict";

import { TrackMuxer, breaksAfter, minVideoDurationUs } from "../dist/lib/cmaf/index.js";

const avcC = new Uint8Array([1, 0x42, 0, 0x1f, 0xff, 0xe0, 0]);

function samples(timesMs, options) {
  const mux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width: 16, height: 16, avcC }, options);
  return timesMs.map((t, i) => mux.sample(new Uint8Array(1), Math.round(t * 1000), null, i === 0));
}

/** Where the next frame's decode time jumps more than twice this one's duration. */
function breaks(list) {
  const out = [];
  for (let i = 1; i < list.length; i++) if (list[i].dts - list[i - 1].dts > 2 * list[i - 1].duration) out.push(i);
  return out;
}

test("frames 17 / 33 / 50 ms apart (a busy capture): no discontinuity", () => {
  const times = [];
  let t = 0;
  for (let i = 0; i < 60; i++) {
    times.push(t);
    t += [16.7, 33.3, 50, 33.3, 16.7, 50][i % 6];
  }
  assert.deepEqual(breaks(samples(times)), []);
});

test("one frame missed (66 ms) or two (100 ms) at 30 fps: no discontinuity", () => {
  assert.deepEqual(breaks(samples([0, 16.7, 83.3, 100, 200, 233.3])), []);
});

test("a frame's duration reaches at most half a frame past the next one at 30 fps", () => {
  const list = samples([0, 33.3, 66.7, 100]);
  for (const s of list.slice(1, -1)) assert.ok(s.duration <= 90000 * 0.05 + 1, `${s.duration}`);
  assert.equal(list[1].duration, 4500); // 50 ms
});

test("the floor follows the frame rate; a longer gap must be a keyframe", () => {
  assert.equal(minVideoDurationUs(30), 50000);
  assert.equal(minVideoDurationUs(15), 100000);
  assert.equal(minVideoDurationUs(0), 50000);
  assert.equal(breaksAfter(100000, 50000), false);
  assert.equal(breaksAfter(100001, 50000), true);
  const list = samples([0, 33.3, 66.7, 300], { minDurationUs: minVideoDurationUs(30) });
  assert.deepEqual(breaks(list), [3]); // what the publisher's keyframe is for
});

test("audio keeps the encoder's durations (no floor)", () => {
  const mux = new TrackMuxer({ kind: "audio", trackId: 1, timescale: 48000, channels: 2, sampleRate: 48000, preSkip: 312 });
  assert.equal(mux.minDuration, 0);
  assert.equal(mux.sample(new Uint8Array(1), 0, 20000, true).duration, 960);
});
