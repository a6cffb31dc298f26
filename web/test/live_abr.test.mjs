// Live playback's pure parts: the group sequencer (decode order from parallel streams),
// the ABR decisions, and the catalog reader on a catalog made by media/catalog.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { GroupSequencer } from "../dist/lib/moqt/sequencer.js";
import { AbrController } from "../dist/lib/streams/abr.js";
import { parseCatalog, CatalogError } from "../dist/lib/moqt/catalog.js";

const here = dirname(fileURLToPath(import.meta.url));
const obj = (group, object, t = 0) => ({ group, object, payload: new Uint8Array([group, object]), arrived: t });
const ids = (released) => released.map((o) => `${o.group}.${o.object}`);

test("the sequencer starts at a group's first object and releases in order", () => {
  const s = new GroupSequencer();
  s.push(obj(5, 3)); // live objects of the current group overtake its joining fetch
  s.push(obj(5, 4));
  assert.deepEqual(ids(s.poll(0)), []); // no first object yet: nothing decodable
  s.push(obj(5, 1));
  s.push(obj(5, 0));
  s.push(obj(5, 2));
  assert.deepEqual(ids(s.poll(1)), ["5.0", "5.1", "5.2", "5.3", "5.4"]);
  s.push(obj(6, 0)); // the next group starts on its own stream before 5 ended
  s.push(obj(5, 5));
  assert.deepEqual(ids(s.poll(2)), ["5.5"]);
  s.end(5);
  s.push(obj(6, 1));
  assert.deepEqual(ids(s.poll(3)), ["6.0", "6.1"]);
  s.push(obj(4, 7)); // older than what plays: dropped
  s.push(obj(6, 0));
  assert.deepEqual(ids(s.poll(4)), []);
  assert.equal(s.late, 2);
  assert.equal(s.skipped, 0);
});

test("a stalled group is skipped once a newer group is arriving", () => {
  const s = new GroupSequencer(0, 1500);
  s.push(obj(1, 0, 0));
  assert.deepEqual(ids(s.poll(0)), ["1.0"]);
  s.push(obj(2, 0, 100)); // object 1.1 never comes (a reset stream, a dropped group)
  assert.deepEqual(ids(s.poll(1000)), []);
  assert.deepEqual(ids(s.poll(1600)), ["2.0"]);
  assert.equal(s.skipped, 1);
});

test("stopBefore holds the sequencer at a rendition switch's boundary", () => {
  const s = new GroupSequencer();
  s.push(obj(3, 0));
  s.end(3);
  s.push(obj(4, 0));
  s.stopBefore = 4;
  assert.deepEqual(ids(s.poll(0)), ["3.0"]);
  assert.equal(s.currentDone(), true);
  assert.equal(s.firstStartable(), 4);
  s.stopBefore = Infinity;
  assert.deepEqual(ids(s.poll(0)), ["4.0"]);
  s.raiseMin(9);
  s.push(obj(8, 0));
  assert.equal(s.held, 0);
});

const LADDER = [
  { name: "1080p", bitrate: 5_000_000, width: 1920, height: 1080 },
  { name: "360p", bitrate: 800_000, width: 640, height: 360 },
  { name: "720p", bitrate: 2_800_000, width: 1280, height: 720 },
];

test("ABR starts on the best rendition within the budget and the element's height", () => {
  assert.equal(new AbrController(LADDER).current, "720p"); // 3 Mbit/s default budget
  assert.equal(new AbrController(LADDER, { startBitrate: 10e6 }).current, "1080p");
  assert.equal(new AbrController(LADDER, { startBitrate: 10e6, maxHeight: 400 }).current, "360p");
  assert.equal(new AbrController(LADDER, { startBitrate: 100_000 }).current, "360p"); // the lowest
  assert.throws(() => new AbrController([]), RangeError);
});

/** Feed `seconds` of samples at `bps`, with `trouble` describing the player. */
function run(abr, from, seconds, bps, trouble) {
  let choice = abr.current;
  for (let t = from; t < from + seconds * 1000; t += 200) {
    abr.received((bps / 8) * 0.2, t);
    choice = abr.decide({ now: t, bufferAhead: trouble ? 0 : 1.5, latency: trouble ? 3 : 1.5, stalled: trouble });
    if (choice !== abr.current) return { choice, at: t };
  }
  return { choice, at: null };
}

test("ABR steps down to what the measured throughput carries when the rendition stalls", () => {
  const abr = new AbrController(LADDER, { startBitrate: 10e6 });
  assert.equal(abr.current, "1080p");
  assert.equal(run(abr, 1, 5, 5e6, false).at, null); // keeps up: stays
  const down = run(abr, 5001, 5, 1.5e6, true); // a 1.5 Mbit/s path
  assert.equal(down.choice, "360p"); // 80 % of 1.5 Mbit/s carries 360p, not 720p
  abr.switched("360p", down.at);
  assert.equal(abr.switches, 1);
});

test("ABR probes one step up after a quiet hold, and holds longer after a failed probe", () => {
  const abr = new AbrController(LADDER, { upHoldMs: 4000 });
  abr.switched("360p", 1);
  const up = run(abr, 2, 10, 1e6, false);
  assert.equal(up.choice, "720p");
  assert.ok(up.at >= 4000, `probed at ${up.at}`);
  abr.switched("720p", up.at);
  const back = run(abr, up.at + 2200, 5, 1e6, true); // 720p does not fit: back down
  assert.equal(back.choice, "360p");
  abr.switched("360p", back.at);
  const again = run(abr, back.at + 1, 12, 1e6, false);
  assert.ok(again.at === null || again.at - back.at >= 8000, "the hold doubled after the failed probe");
});

test("ABR pinning overrides the decision until auto", () => {
  const abr = new AbrController(LADDER);
  abr.pin("1080p");
  assert.equal(abr.decide({ now: 1, bufferAhead: 0, latency: 9, stalled: true }), "1080p");
  abr.pin("auto");
  assert.equal(abr.isPinned, false);
});

const python = join(here, "../../.venv/bin/python");

test("the catalog reader reads what media/catalog.py writes", { skip: !existsSync(python) }, () => {
  const script = `
import base64, sys
from media.catalog import Catalog, CatalogTrack
init = base64.b64decode("AAAAGGZ0eXBpc281AAAAAGlzbzVjbWZj")
tracks = (
    CatalogTrack(name="720p", role="video", codec="avc1.64001f", bitrate=2800000, width=1280,
                 height=720, init_data=init, max_group_duration=2000),
    CatalogTrack(name="360p", role="video", codec="avc1.42c01e", bitrate=800000, width=640,
                 height=360, init_data=init),
    CatalogTrack(name="audio", role="audio", codec="mp4a.40.2", bitrate=128000, init_data=init),
)
sys.stdout.write(Catalog(tracks).to_json().decode())
`;
  const json = execFileSync(python, ["-c", script], { cwd: join(here, "../.."), encoding: "utf8" });
  const catalog = parseCatalog(new TextEncoder().encode(json));
  assert.deepEqual(catalog.videos.map((t) => t.name), ["720p", "360p"]);
  assert.deepEqual(catalog.audios.map((t) => t.name), ["audio"]);
  const top = catalog.videos[0];
  assert.equal(top.codec, "avc1.64001f");
  assert.equal(top.height, 720);
  assert.equal(top.maxGroupDuration, 2000);
  assert.equal(Buffer.from(top.initData).toString("base64"), "AAAAGGZ0eXBpc281AAAAAGlzbzVjbWZj");
  assert.equal(catalog.isComplete, false);
  assert.throws(() => parseCatalog(new TextEncoder().encode("{")), CatalogError);
  assert.throws(() => parseCatalog(new TextEncoder().encode('{"deltaUpdate": []}')), CatalogError);
});
