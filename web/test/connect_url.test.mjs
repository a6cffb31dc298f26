// The URL MoqtSession.connect hands to WebTransport: a token leaves it for CLIENT_SETUP
// (src/moqt/session.ts splitConnectUrl; picoquic's HTTP/3 refuses a Huffman-coded :path > 256 bytes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { splitConnectUrl } from "../dist/lib/moqt/session.js";

const JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJsdl8xIiwibnMiOiJzdHJlYW0vb3JnX2FiYy9sdl8xIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

test("a signed URL's token moves from the query into SETUP", () => {
  const { url, token } = splitConnectUrl(`https://pop:4443/stream/org_abc/lv_1?token=${JWT}`);
  assert.equal(url, "https://pop:4443/stream/org_abc/lv_1");
  assert.equal(token, JWT);
});

test("an explicit token is kept; the URL's is dropped either way", () => {
  assert.deepEqual(splitConnectUrl(`https://pop/stream/o/lv_1?token=${JWT}`, "other"), {
    url: "https://pop/stream/o/lv_1",
    token: "other",
  });
});

test("other query parameters stay as they were, in order", () => {
  const { url, token } = splitConnectUrl(`https://pop/x?a=1%20b&token=${JWT}&hops=p1,p2&c`);
  assert.equal(url, "https://pop/x?a=1%20b&hops=p1,p2&c");
  assert.equal(token, JWT);
});

test("a #token= fragment moves into SETUP and the fragment is left out", () => {
  assert.deepEqual(splitConnectUrl(`https://pop/stream/o/lv_1#token=${JWT}`), {
    url: "https://pop/stream/o/lv_1",
    token: JWT,
  });
  assert.deepEqual(splitConnectUrl(`https://pop/p?token=a#token=b`), { url: "https://pop/p", token: "a" });
});

test("a URL without a token, or not a URL, is handed on unchanged", () => {
  assert.deepEqual(splitConnectUrl("https://pop:4443", "t"), { url: "https://pop:4443", token: "t" });
  assert.deepEqual(splitConnectUrl("https://pop/p?tokens=1"), { url: "https://pop/p?tokens=1", token: undefined });
  assert.deepEqual(splitConnectUrl("not a url"), { url: "not a url", token: undefined });
  // an empty ?token= is no credential, but still left out of the path
  assert.deepEqual(splitConnectUrl("https://pop/p?token="), { url: "https://pop/p", token: undefined });
});
