// The browser MoQT codec (web/src/moqt) against bytes made by the Python moqt package,
// the relay's wire truth (fixtures/moqt_wire.py -> fixtures/moqt_wire.json).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { decodeControl, encodeControl } from "../dist/lib/moqt/messages.js";
import { FetchStreamParser, SubgroupStreamParser, encodeSubgroupHeader, encodeSubgroupObject } from "../dist/lib/moqt/data.js";
import { NeedMoreData, ProtocolViolation, Reader, StreamReader, encodeVarint } from "../dist/lib/moqt/wire.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixturePath = join(here, "fixtures", "moqt_wire.json");
const fixtures = JSON.parse(readFileSync(fixturePath, "utf8"));

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (h) => new Uint8Array(Buffer.from(h, "hex"));

/** JSON fixture fields -> the codec's message shape ([type, {hex}] -> [type, Uint8Array]). */
function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === "object") {
    if (Object.keys(value).length === 1 && typeof value.hex === "string") return unhex(value.hex);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

/** A ReadableStream delivering `bytes` in chunks of `size` (exercises field splits). */
function streamOf(bytes, size) {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

test("the fixtures are what the Python moqt package prints today", { skip: !existsSync(join(here, "../../.venv/bin/python")) }, () => {
  const out = execFileSync(join(here, "../../.venv/bin/python"), [join(here, "fixtures", "moqt_wire.py")], {
    cwd: join(here, "../.."),
    encoding: "utf8",
  });
  assert.deepEqual(JSON.parse(out), fixtures);
});

test("varints encode and decode like Python's", () => {
  for (const { value, hex: h } of fixtures.varints) {
    assert.equal(hex(encodeVarint(value)), h, `encode ${value}`);
    assert.equal(new Reader(unhex(h)).varint(), value, `decode ${value}`);
  }
  assert.throws(() => new Reader(unhex("40")).varint(), NeedMoreData);
  assert.throws(() => encodeVarint(-1), RangeError);
});

for (const c of fixtures.control) {
  test(`control ${c.name}: decodes Python's bytes and re-encodes them`, () => {
    const bytes = unhex(c.hex);
    const [msg, used] = decodeControl(bytes);
    assert.equal(used, bytes.length);
    const expected = revive(c.fields);
    assert.deepEqual(msg, expected);
    assert.equal(hex(encodeControl(expected)), c.hex);
  });
}

test("control framing: short input needs more data, bad payloads are protocol violations", () => {
  const sub = unhex(fixtures.control.find((c) => c.name === "subscribe").hex);
  for (let n = 0; n < sub.length; n++) assert.throws(() => decodeControl(sub.slice(0, n)), NeedMoreData, `prefix ${n}`);
  // Length one short: the last field runs past the message.
  const cut = sub.slice();
  cut[2] -= 1;
  assert.throws(() => decodeControl(cut.slice(0, sub.length - 1)), ProtocolViolation);
  // Unknown message type.
  assert.throws(() => decodeControl(unhex("3f0000")), ProtocolViolation);
  // Bytes after the last field.
  assert.throws(() => decodeControl(unhex("0a00020000")), ProtocolViolation);
  // Draft-16: an unknown message parameter (0x04, draft-14's MAX_CACHE_DURATION) closes the session.
  assert.throws(() => decodeControl(unhex("070004" + "04" + "01" + "0405")), ProtocolViolation);
  // FORWARD of 2.
  assert.throws(() => decodeControl(unhex("070004" + "04" + "01" + "1002")), ProtocolViolation);
});

for (const c of fixtures.data.filter((d) => d.name.startsWith("subgroup"))) {
  for (const size of [1, 3, 4096]) {
    test(`data ${c.name} in ${size}-byte chunks: the subgroup parser reads Python's stream`, async () => {
      const s = new StreamReader(streamOf(unhex(c.hex), size));
      const parser = new SubgroupStreamParser(s, await s.varint());
      const header = await parser.header();
      assert.equal(header.trackAlias, c.header.trackAlias);
      assert.equal(header.group, c.header.group);
      assert.equal(header.priority, c.header.priority);
      assert.equal(header.extensions, c.header.extensions);
      assert.equal(header.endOfGroup, c.header.endOfGroup);
      const got = [];
      for (let o = await parser.next(); o; o = await parser.next()) {
        got.push({ group: o.group, subgroup: o.subgroup, object: o.object, status: o.status, payload: hex(o.payload) });
      }
      assert.deepEqual(got, c.objects);
    });
  }
}

test("the subgroup writer produces Python's bytes (ZERO subgroup mode)", () => {
  const c = fixtures.data.find((d) => d.name === "subgroup_zero");
  const parts = [encodeSubgroupHeader({ trackAlias: 7, group: 12, priority: 3 })];
  let prev = null;
  for (const o of c.objects) {
    parts.push(encodeSubgroupObject(o.object, prev, unhex(o.payload), o.status));
    prev = o.object;
  }
  assert.equal(parts.map(hex).join(""), c.hex);
});

test("a subgroup stream cut inside an object is a protocol violation", async () => {
  const c = fixtures.data.find((d) => d.name === "subgroup_zero");
  const bytes = unhex(c.hex);
  const s = new StreamReader(streamOf(bytes.slice(0, bytes.length - 10), 7));
  const parser = new SubgroupStreamParser(s, await s.varint());
  await parser.header();
  await parser.next();
  await assert.rejects(async () => {
    for (let o = await parser.next(); o; o = await parser.next());
  }, ProtocolViolation);
});

test("data fetch_stream: the fetch parser resolves Serialization Flags like Python", async () => {
  const c = fixtures.data.find((d) => d.name === "fetch_stream");
  for (const size of [1, 5, 65536]) {
    const s = new StreamReader(streamOf(unhex(c.hex), size));
    assert.equal(await s.varint(), 0x05);
    const parser = new FetchStreamParser(s);
    assert.equal(await parser.header(), c.requestId);
    const objects = [];
    let marker = null;
    for (let item = await parser.next(); item; item = await parser.next()) {
      if ("endOfRange" in item) marker = { group: item.group, object: item.object };
      else objects.push({ group: item.group, subgroup: item.subgroup, object: item.object, status: item.status, payload: hex(item.payload) });
    }
    assert.deepEqual(objects, c.objects);
    assert.deepEqual(marker, c.endOfRange);
  }
});

test("unknown unidirectional stream types and invalid subgroup modes are refused", async () => {
  const { classifyStream } = await import("../dist/lib/moqt/data.js");
  assert.equal(classifyStream(0x05), "fetch");
  assert.equal(classifyStream(0x10), "subgroup");
  assert.equal(classifyStream(0x3d), "subgroup");
  assert.throws(() => classifyStream(0x16), ProtocolViolation); // mode 3
  assert.throws(() => classifyStream(0x40), ProtocolViolation);
  assert.throws(() => classifyStream(0x01), ProtocolViolation);
});
