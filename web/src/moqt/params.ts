/**
 * Draft-16 Key-Value-Pairs (setup parameters, message parameters, track and object
 * extensions), the AUTHORIZATION TOKEN structure, locations and subscription filters.
 *
 * A pair is `Delta Type (i), [Length (i)], Value`: the Type is written as the delta
 * from the previous pair's Type (pairs go in ascending Type order); an even Type
 * carries one varint, an odd Type a length-prefixed byte string (at most 65535 bytes).
 */
import { ProtocolViolation, Reader, Writer, fromUtf8, utf8 } from "./wire.js";

export type KeyValue = readonly [type: number, value: number | Uint8Array];

export const MAX_KVP_VALUE_LENGTH = 0xffff;
export const MAX_NAMESPACE_FIELDS = 32;
export const MAX_FULL_TRACK_NAME_LENGTH = 4096;
export const MAX_REASON_LENGTH = 1024;

/** Setup parameter types (CLIENT_SETUP / SERVER_SETUP). */
export const SetupParam = {
  PATH: 0x01,
  MAX_REQUEST_ID: 0x02,
  AUTHORIZATION_TOKEN: 0x03,
  MAX_AUTH_TOKEN_CACHE_SIZE: 0x04,
  AUTHORITY: 0x05,
  MOQT_IMPLEMENTATION: 0x07,
} as const;

/** Draft-16 message parameter types. */
export const MessageParam = {
  DELIVERY_TIMEOUT: 0x02,
  AUTHORIZATION_TOKEN: 0x03,
  EXPIRES: 0x08,
  LARGEST_OBJECT: 0x09,
  FORWARD: 0x10,
  SUBSCRIBER_PRIORITY: 0x20,
  SUBSCRIPTION_FILTER: 0x21,
  GROUP_ORDER: 0x22,
  NEW_GROUP_REQUEST: 0x32,
} as const;

const KNOWN_MESSAGE_PARAMS = new Set<number>(Object.values(MessageParam));

/** Draft-16 track extension types (SUBSCRIBE_OK, PUBLISH, FETCH_OK). */
export const TrackExtension = {
  DELIVERY_TIMEOUT: 0x02,
  MAX_CACHE_DURATION: 0x04,
  IMMUTABLE_EXTENSIONS: 0x0b,
  DEFAULT_PUBLISHER_PRIORITY: 0x0e,
  DEFAULT_PUBLISHER_GROUP_ORDER: 0x22,
  DYNAMIC_GROUPS: 0x30,
} as const;

/** Pairs sorted by type (stable), as the delta encoding requires. */
export function sortPairs(pairs: readonly KeyValue[]): KeyValue[] {
  for (const [type, value] of pairs) {
    if (!Number.isInteger(type) || type < 0) throw new RangeError(`bad key-value type ${type}`);
    const odd = type % 2 === 1;
    if (odd !== value instanceof Uint8Array) {
      throw new RangeError(`key-value type ${type} is ${odd ? "odd: bytes" : "even: a number"}`);
    }
    if (value instanceof Uint8Array && value.length > MAX_KVP_VALUE_LENGTH) {
      throw new RangeError(`key-value ${type} value of ${value.length} bytes`);
    }
  }
  return [...pairs].sort((a, b) => a[0] - b[0]);
}

/** Write the pairs (no count). */
export function writePairs(w: Writer, pairs: readonly KeyValue[]): void {
  let prev = 0;
  for (const [type, value] of sortPairs(pairs)) {
    w.varint(type - prev);
    prev = type;
    if (typeof value === "number") w.varint(value);
    else w.lengthPrefixed(value);
  }
}

/** `Number of Parameters (i)` then the pairs. */
export function writeCountedPairs(w: Writer, pairs: readonly KeyValue[]): void {
  w.varint(pairs.length);
  writePairs(w, pairs);
}

/** Read `count` pairs, or (count null) pairs up to the end of `r`. */
export function readPairs(r: Reader, count: number | null): KeyValue[] {
  const out: KeyValue[] = [];
  let prev = 0;
  for (let n = 0; count === null ? !r.eof() : n < count; n++) {
    const type = prev + r.varint();
    prev = type;
    if (type % 2 === 0) out.push([type, r.varint()]);
    else out.push([type, r.lengthPrefixed(MAX_KVP_VALUE_LENGTH, `key-value ${type}`)]);
  }
  return out;
}

export function readCountedPairs(r: Reader): KeyValue[] {
  return readPairs(r, r.varint());
}

export function pairInt(pairs: readonly KeyValue[], type: number): number | undefined {
  const v = pairs.find((p) => p[0] === type)?.[1];
  return typeof v === "number" ? v : undefined;
}

export function pairBytes(pairs: readonly KeyValue[], type: number): Uint8Array | undefined {
  const v = pairs.find((p) => p[0] === type)?.[1];
  return v instanceof Uint8Array ? v : undefined;
}

export function withoutPairs(pairs: readonly KeyValue[], ...types: number[]): KeyValue[] {
  return pairs.filter((p) => !types.includes(p[0]));
}

/** Draft-16: an unknown message parameter closes the session; known ones may not repeat
 * (except AUTHORIZATION_TOKEN) and are range-checked. */
export function checkMessageParams(pairs: readonly KeyValue[]): void {
  const seen = new Set<number>();
  for (const [type, value] of pairs) {
    if (!KNOWN_MESSAGE_PARAMS.has(type)) {
      throw new ProtocolViolation(`unknown message parameter 0x${type.toString(16)}`);
    }
    if (type !== MessageParam.AUTHORIZATION_TOKEN) {
      if (seen.has(type)) throw new ProtocolViolation(`duplicate parameter 0x${type.toString(16)}`);
      seen.add(type);
    }
    const ranges: Record<number, [number, number]> = {
      [MessageParam.FORWARD]: [0, 1],
      [MessageParam.SUBSCRIBER_PRIORITY]: [0, 255],
      [MessageParam.GROUP_ORDER]: [1, 2],
    };
    const range = ranges[type];
    if (range && typeof value === "number" && (value < range[0] || value > range[1])) {
      throw new ProtocolViolation(`parameter 0x${type.toString(16)} is ${value}`);
    }
    if (type === MessageParam.DELIVERY_TIMEOUT && value === 0) {
      throw new ProtocolViolation("DELIVERY_TIMEOUT of 0");
    }
  }
}

// --- AUTHORIZATION TOKEN ------------------------------------------------------------------

export const TokenAlias = { DELETE: 0, REGISTER: 1, USE_ALIAS: 2, USE_VALUE: 3 } as const;

export interface AuthToken {
  aliasType: number;
  alias?: number;
  tokenType?: number;
  value?: Uint8Array;
}

/** A USE_VALUE token (token type 0) carrying `value` (a JWT or a stream key) in UTF-8. */
export function useValueToken(value: string | Uint8Array, tokenType = 0): AuthToken {
  return { aliasType: TokenAlias.USE_VALUE, tokenType, value: typeof value === "string" ? utf8(value) : value };
}

export function encodeAuthToken(t: AuthToken): Uint8Array {
  const w = new Writer().varint(t.aliasType);
  if (t.aliasType !== TokenAlias.USE_VALUE) w.varint(t.alias ?? 0);
  if (t.aliasType === TokenAlias.REGISTER || t.aliasType === TokenAlias.USE_VALUE) {
    w.varint(t.tokenType ?? 0).bytes(t.value ?? new Uint8Array(0));
  }
  return w.finish();
}

export function decodeAuthToken(raw: Uint8Array): AuthToken {
  const r = new Reader(raw);
  try {
    const aliasType = r.varint();
    if (aliasType > 3) throw new ProtocolViolation(`unknown token alias type ${aliasType}`, 0x6);
    const out: AuthToken = { aliasType };
    if (aliasType !== TokenAlias.USE_VALUE) out.alias = r.varint();
    if (aliasType === TokenAlias.DELETE || aliasType === TokenAlias.USE_ALIAS) {
      if (!r.eof()) throw new ProtocolViolation("token has trailing bytes", 0x6);
      return out;
    }
    out.tokenType = r.varint();
    out.value = r.rest();
    return out;
  } catch (e) {
    if (e instanceof ProtocolViolation) throw e;
    throw new ProtocolViolation("truncated authorization token", 0x6);
  }
}

// --- locations, filters -----------------------------------------------------------------

export interface Location {
  group: number;
  object: number;
}

export function encodeLocation(loc: Location): Uint8Array {
  return new Writer().varint(loc.group).varint(loc.object).finish();
}

export function decodeLocation(raw: Uint8Array): Location {
  const r = new Reader(raw);
  try {
    const loc = { group: r.varint(), object: r.varint() };
    if (!r.eof()) throw new ProtocolViolation("bytes after a Location", 0x6);
    return loc;
  } catch (e) {
    if (e instanceof ProtocolViolation) throw e;
    throw new ProtocolViolation("not a Location", 0x6);
  }
}

export const FilterType = { NEXT_GROUP_START: 0x1, LARGEST_OBJECT: 0x2, ABSOLUTE_START: 0x3, ABSOLUTE_RANGE: 0x4 } as const;

export type SubscriptionFilter =
  | { type: typeof FilterType.NEXT_GROUP_START }
  | { type: typeof FilterType.LARGEST_OBJECT }
  | { type: typeof FilterType.ABSOLUTE_START; start: Location }
  | { type: typeof FilterType.ABSOLUTE_RANGE; start: Location; endGroup: number };

export function encodeFilter(f: SubscriptionFilter): Uint8Array {
  const w = new Writer().varint(f.type);
  if (f.type === FilterType.ABSOLUTE_START || f.type === FilterType.ABSOLUTE_RANGE) {
    w.varint(f.start.group).varint(f.start.object);
  }
  if (f.type === FilterType.ABSOLUTE_RANGE) w.varint(f.endGroup);
  return w.finish();
}

export function decodeFilter(raw: Uint8Array): SubscriptionFilter {
  const r = new Reader(raw);
  let f: SubscriptionFilter;
  try {
    const type = r.varint();
    if (type === FilterType.NEXT_GROUP_START || type === FilterType.LARGEST_OBJECT) f = { type };
    else if (type === FilterType.ABSOLUTE_START) f = { type, start: { group: r.varint(), object: r.varint() } };
    else if (type === FilterType.ABSOLUTE_RANGE) {
      const start = { group: r.varint(), object: r.varint() };
      f = { type, start, endGroup: r.varint() };
      if (f.endGroup < start.group) throw new ProtocolViolation("filter end group before its start");
    } else throw new ProtocolViolation(`unknown filter type ${type}`);
  } catch (e) {
    if (e instanceof ProtocolViolation) throw e;
    throw new ProtocolViolation("truncated subscription filter");
  }
  if (!r.eof()) throw new ProtocolViolation("bytes after the subscription filter");
  return f;
}

// --- names ------------------------------------------------------------------------------

/** A namespace: 1..32 non-empty UTF-8 fields (`["stream", "org_abc", "lv_x"]`). */
export type Namespace = readonly string[];

/** `"stream/org/lv_x"` or `["stream", "org", "lv_x"]` -> fields. */
export function toNamespace(ns: string | Namespace): Namespace {
  const fields = typeof ns === "string" ? ns.split("/").filter((f) => f.length > 0) : [...ns];
  if (fields.length < 1 || fields.length > MAX_NAMESPACE_FIELDS || fields.some((f) => f.length === 0)) {
    throw new RangeError(`a namespace has 1..${MAX_NAMESPACE_FIELDS} non-empty fields`);
  }
  return fields;
}

export function writeNamespace(w: Writer, ns: Namespace): void {
  w.varint(ns.length);
  for (const f of ns) w.lengthPrefixed(utf8(f));
}

export function readNamespace(r: Reader, allowEmpty = false): Namespace {
  const count = r.varint();
  if (count < (allowEmpty ? 0 : 1) || count > MAX_NAMESPACE_FIELDS) {
    throw new ProtocolViolation(`namespace with ${count} fields`);
  }
  const out: string[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const raw = r.lengthPrefixed(MAX_FULL_TRACK_NAME_LENGTH, "namespace field");
    total += raw.length;
    if (total > MAX_FULL_TRACK_NAME_LENGTH) throw new ProtocolViolation("namespace too long");
    if (raw.length === 0) throw new ProtocolViolation("empty namespace field");
    out.push(fromUtf8(raw, "namespace field"));
  }
  return out;
}

export function writeReason(w: Writer, reason: string): void {
  let raw = utf8(reason);
  if (raw.length > MAX_REASON_LENGTH) raw = raw.subarray(0, MAX_REASON_LENGTH);
  w.lengthPrefixed(raw);
}

export function readReason(r: Reader): string {
  return fromUtf8(r.lengthPrefixed(MAX_REASON_LENGTH, "reason phrase"), "reason phrase");
}
