// The viewer's choice of delivery by id prefix or signed URL (src/streams/viewer.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseTarget } from "../dist/lib/streams/viewer.js";
import { PlaybackError } from "../dist/lib/streams/errors.js";

test("lv_ is live, pb_ is on demand", () => {
  assert.deepEqual(parseTarget("lv_01abc"), { kind: "live", id: "lv_01abc", token: null, url: null });
  assert.deepEqual(parseTarget("pb_01abc"), { kind: "vod", id: "pb_01abc", token: null, url: null });
});

test("signed URLs carry their relay or catalog and token", () => {
  const live = parseTarget("https://relay.test:4443/stream/org_abc/lv_01x?token=a.b.c");
  assert.deepEqual(live, { kind: "live", id: "lv_01x", token: "a.b.c", url: "https://relay.test:4443" });
  const moqt = parseTarget("moqt://relay.test:4443/stream/org_abc/lv_01x?token=t");
  assert.equal(moqt.url, "https://relay.test:4443");
  const vod = parseTarget("https://api.test/vod/pb_01y/catalog.json?token=t2");
  assert.deepEqual(vod, { kind: "vod", id: "pb_01y", token: "t2", url: "https://api.test/vod/pb_01y/catalog.json?token=t2" });
});

test("anything else is a typed not_found", () => {
  for (const bad of ["li_01abc", "", "lv_", "pb_../x", "https://x.test/other/path", "javascript:alert(1)"]) {
    assert.throws(() => parseTarget(bad), (e) => e instanceof PlaybackError && e.reason === "not_found", bad);
  }
});
