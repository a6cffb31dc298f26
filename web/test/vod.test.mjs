// On-demand catalog and timeline parsing (src/streams/vod.ts) on a real packaged asset:
// CLUTCHCALL_VOD_FIXTURE is a directory vod.packaging wrote from an ffmpeg clip
// (tests/web/test_node_units.py makes it and runs `node --test web/test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { catalogUrl, groupAt, parseVodCatalog, recordIndexAt, resourceUrl } from "../dist/lib/streams/vod.js";
import { PlaybackError } from "../dist/lib/streams/errors.js";

const dir = process.env.CLUTCHCALL_VOD_FIXTURE;
assert.ok(dir, "set CLUTCHCALL_VOD_FIXTURE (run through tests/web/test_node_units.py)");
const raw = JSON.parse(readFileSync(join(dir, "catalog.json"), "utf8"));

test("a packaged catalog parses: video best first, audio, timelines, duration", () => {
  const cat = parseVodCatalog(raw);
  assert.deepEqual(cat.video.map((t) => t.name), ["720p", "360p"]);
  assert.deepEqual(cat.audio.map((t) => t.name), ["audio"]);
  for (const t of [...cat.video, ...cat.audio]) {
    assert.ok(t.initData instanceof Uint8Array && t.initData.byteLength > 100);
    assert.deepEqual(t.initData, new Uint8Array(readFileSync(join(dir, t.name, "init.mp4"))));
    assert.ok(t.timeline.length >= 3);
    assert.equal(t.timeline[0][0], 0);
  }
  assert.ok(cat.duration > 5.9 && cat.duration < 6.2, String(cat.duration));
});

test("seeking finds the last record at or before the time", () => {
  const v = parseVodCatalog(raw).video[0];
  const tl = v.timeline;
  assert.equal(groupAt(tl, 0), tl[0][1][0]);
  assert.equal(groupAt(tl, tl[1][0] - 1), tl[0][1][0]);
  assert.equal(groupAt(tl, tl[1][0]), tl[1][1][0]);
  assert.equal(groupAt(tl, tl[1][0] + 1), tl[1][1][0]);
  assert.equal(groupAt(tl, 10 ** 9), tl[tl.length - 1][1][0]);
  assert.equal(recordIndexAt(tl, -5), 0);
  // every group named by the timeline exists as a segment
  for (const [, [group]] of tl) readFileSync(join(dir, v.name, `${group}.m4s`));
});

test("bad catalogs are typed decode errors", () => {
  const cases = [
    null,
    [],
    { tracks: "no" },
    { tracks: [] },
    { tracks: [{ name: "v", role: "video", packaging: "cmaf" }] }, // no timeline
    { tracks: [{ name: "v", role: "video", timeline: [[0, [1, 0], 0], [10, [1, 0], 0]] }] }, // group repeats
    { tracks: [{ name: "v", role: "video", timeline: [[10, [0, 0], 0], [5, [1, 0], 0]] }] }, // time goes back
    { tracks: [{ name: "../x", role: "video", timeline: [] }] },
    { tracks: [{ name: "v", role: "video", packaging: "loc", timeline: [] }] },
    { tracks: [{ name: "v", role: "video", initData: "***", timeline: [] }] },
  ];
  for (const c of cases) {
    assert.throws(() => parseVodCatalog(c), (e) => e instanceof PlaybackError && e.reason === "decode", JSON.stringify(c));
  }
});

test("URLs: pb_ ids resolve against apiBase, the token rides on every resource", () => {
  const u = catalogUrl("pb_abc", "http://api.test:8080/", "t.o.k");
  assert.equal(u.href, "http://api.test:8080/vod/pb_abc/catalog.json?token=t.o.k");
  assert.equal(resourceUrl(u, "720p/3.m4s").href, "http://api.test:8080/vod/pb_abc/720p/3.m4s?token=t.o.k");
  const signed = catalogUrl("https://cdn.test/vod/pb_x/catalog.json?token=abc", "", null);
  assert.equal(resourceUrl(signed, "audio/init.mp4").href, "https://cdn.test/vod/pb_x/audio/init.mp4?token=abc");
  assert.equal(resourceUrl(catalogUrl("pb_y", "http://h", null), "a/0.m4s").href, "http://h/vod/pb_y/a/0.m4s");
  assert.throws(() => catalogUrl("../etc", "http://h"), (e) => e instanceof PlaybackError && e.reason === "not_found");
});
