// Backoff policy of the live viewer's and the publisher's reconnects (src/streams/reconnect.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff, reconnectPolicy, reconnectUrl } from "../dist/lib/streams/reconnect.js";

test("delays double from the initial one, capped, jittered within [d/2, d]", () => {
  const policy = reconnectPolicy({ attempts: 6, windowMs: 60000, initialDelayMs: 100, maxDelayMs: 500 });
  const high = new Backoff(policy, () => 1, 0);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next(false, 0)), [100, 200, 400, 500, 500]);
  const low = new Backoff(policy, () => 0, 0);
  assert.deepEqual([1, 2, 3, 4].map(() => low.next(false, 0)), [50, 100, 200, 250]);
});

test("a GOAWAY's first attempt has no delay; the attempts and the window bound the outage", () => {
  const policy = reconnectPolicy({ attempts: 3, windowMs: 1000, initialDelayMs: 100, maxDelayMs: 1000 });
  const b = new Backoff(policy, () => 1, 0);
  assert.equal(b.next(true, 0), 0);
  assert.equal(b.next(true, 10), 200); // only the first is immediate
  assert.equal(b.next(false, 20), 400);
  assert.equal(b.next(false, 30), null); // 3 attempts made
  const w = new Backoff(policy, () => 1, 0);
  assert.equal(w.next(false, 900), 100); // never past the window's end
  assert.equal(w.next(false, 1000), null); // the window is over
  assert.equal(w.left(400), 600);
});

test("defaults, off, and bad values", () => {
  assert.deepEqual(reconnectPolicy(undefined), { attempts: 10, windowMs: 20000, initialDelayMs: 250, maxDelayMs: 3000 });
  assert.equal(reconnectPolicy(false), null);
  assert.throws(() => reconnectPolicy({ attempts: -1 }), RangeError);
  assert.throws(() => reconnectPolicy({ windowMs: Number.NaN }), RangeError);
});

test("a GOAWAY's URI wins, else the relays in turn", () => {
  const urls = ["https://a", "https://b"];
  assert.equal(reconnectUrl(urls, 1, ""), "https://b");
  assert.equal(reconnectUrl(urls, 2, ""), "https://a");
  assert.equal(reconnectUrl(urls, 1, "https://c/moq"), "https://c/moq");
});
