/**
 * Draft-16 data streams: subgroup streams (SUBGROUP_HEADER + objects) and fetch
 * streams (FETCH_HEADER + objects with Serialization Flags).
 *
 * Subgroup stream type bits: 0x10 always; 0x01 every object has an Extensions
 * block; 0x06 Subgroup ID mode (0: ID 0, 1: the first Object ID, 2: field present,
 * 3: invalid); 0x08 the subgroup holds the group's last object; 0x20 no Publisher
 * Priority field. Objects: `Object ID Delta (i), [Extensions], Payload Length (i),
 * [Object Status (i) when the length is 0], Payload`.
 */
import { MAX_KVP_VALUE_LENGTH } from "./params.js";
import { NeedMoreData, ProtocolViolation, Reader, StreamReader, Writer } from "./wire.js";

export const FETCH_HEADER_TYPE = 0x05;
export const ObjectStatus = { NORMAL: 0x0, END_OF_GROUP: 0x3, END_OF_TRACK: 0x4 } as const;
const VALID_STATUSES = new Set<number>([0x0, 0x3, 0x4]);

export const DEFAULT_MAX_OBJECT_SIZE = 8 << 20;
const MAX_EXTENSIONS_SIZE = 64 << 10;

export interface SubgroupHeader {
  trackAlias: number;
  group: number;
  /** Resolved after the first object in FIRST_OBJECT mode (null until then). */
  subgroup: number | null;
  /** null: DEFAULT_PRIORITY (the subscription's priority applies). */
  priority: number | null;
  extensions: boolean;
  endOfGroup: boolean;
}

export interface MoqtObject {
  group: number;
  subgroup: number;
  object: number;
  priority: number | null;
  status: number;
  /** Raw Key-Value-Pairs of the object's extension headers (empty when none). */
  extensions: Uint8Array;
  payload: Uint8Array;
}

export function isSubgroupType(t: number): boolean {
  return (t & ~0x3f) === 0 && (t & 0x10) !== 0 && (t & 0x06) !== 0x06;
}

/** SUBGROUP_HEADER bytes. `subgroup` 0 uses the ZERO mode, anything else the explicit field. */
export function encodeSubgroupHeader(h: {
  trackAlias: number;
  group: number;
  subgroup?: number;
  priority?: number | null;
  endOfGroup?: boolean;
}): Uint8Array {
  const subgroup = h.subgroup ?? 0;
  let type = 0x10;
  if (subgroup !== 0) type |= 0x04;
  if (h.endOfGroup) type |= 0x08;
  if (h.priority === null) type |= 0x20;
  const w = new Writer().varint(type).varint(h.trackAlias).varint(h.group);
  if (subgroup !== 0) w.varint(subgroup);
  if (h.priority !== null) w.uint8(h.priority ?? 128);
  return w.finish();
}

/** One object of a subgroup stream without extension headers (header bit 0x01 clear). */
export function encodeSubgroupObject(
  objectId: number,
  prevObjectId: number | null,
  payload: Uint8Array,
  status: number = ObjectStatus.NORMAL,
): Uint8Array {
  if (prevObjectId !== null && objectId <= prevObjectId) {
    throw new RangeError(`object ${objectId} after ${prevObjectId}: ids must increase`);
  }
  if (status !== ObjectStatus.NORMAL && payload.length) throw new RangeError("a status object has no payload");
  const delta = prevObjectId === null ? objectId : objectId - prevObjectId - 1;
  const w = new Writer(payload.length + 16).varint(delta).varint(payload.length);
  if (payload.length === 0) w.varint(status);
  return w.bytes(payload).finish();
}

/** The first varint of a unidirectional stream tells its kind. */
export function classifyStream(type: number): "subgroup" | "fetch" {
  if (type === FETCH_HEADER_TYPE) return "fetch";
  if (isSubgroupType(type)) return "subgroup";
  throw new ProtocolViolation(`unknown unidirectional stream type 0x${type.toString(16)}`);
}

async function readExtensions(s: StreamReader): Promise<Uint8Array> {
  const n = await s.varint();
  if (n > MAX_EXTENSIONS_SIZE) throw new ProtocolViolation(`extension block of ${n} bytes`);
  const raw = await s.bytes(n);
  checkExtensionBlock(raw);
  return raw;
}

/** A complete Key-Value-Pair sequence, or ProtocolViolation. */
export function checkExtensionBlock(raw: Uint8Array): void {
  const r = new Reader(raw);
  try {
    let prev = 0;
    while (!r.eof()) {
      const type = prev + r.varint();
      prev = type;
      if (type % 2 === 0) r.varint();
      else r.lengthPrefixed(MAX_KVP_VALUE_LENGTH, "extension");
    }
  } catch (e) {
    if (e instanceof NeedMoreData) throw new ProtocolViolation("extension block does not parse");
    throw e;
  }
}

async function readPayloadLength(s: StreamReader, max: number): Promise<number> {
  const n = await s.varint();
  if (n > max) throw new ProtocolViolation(`object of ${n} bytes (max ${max})`);
  return n;
}

/**
 * Parses a subgroup stream whose type varint was already read.
 * `header()` first, then `next()` until it returns null (clean FIN).
 * A FIN in the middle of an object rejects with ProtocolViolation.
 */
export class SubgroupStreamParser {
  private headerValue: SubgroupHeader | null = null;
  private prev: number | null = null;
  private mode = 0;
  private ended = false;

  constructor(
    private readonly s: StreamReader,
    private readonly type: number,
    private readonly maxObjectSize = DEFAULT_MAX_OBJECT_SIZE,
  ) {
    if (!isSubgroupType(type)) throw new ProtocolViolation(`not a subgroup stream type 0x${type.toString(16)}`);
  }

  async header(): Promise<SubgroupHeader> {
    try {
      const t = this.type;
      this.mode = (t >> 1) & 0x3;
      const trackAlias = await this.s.varint();
      const group = await this.s.varint();
      const subgroup = this.mode === 2 ? await this.s.varint() : this.mode === 0 ? 0 : null;
      const priority = t & 0x20 ? null : await this.s.uint8();
      this.headerValue = {
        trackAlias,
        group,
        subgroup,
        priority,
        extensions: (t & 0x01) !== 0,
        endOfGroup: (t & 0x08) !== 0,
      };
      return this.headerValue;
    } catch (e) {
      if (e instanceof NeedMoreData) throw new ProtocolViolation("subgroup stream ended inside its header");
      throw e;
    }
  }

  async next(): Promise<MoqtObject | null> {
    const h = this.headerValue;
    if (!h) throw new Error("header() first");
    if (await this.s.atEnd()) return null;
    if (this.ended) throw new ProtocolViolation("object after End of Group/Track on a subgroup stream");
    try {
      const delta = await this.s.varint();
      const object = this.prev === null ? delta : this.prev + delta + 1;
      const extensions = h.extensions ? await readExtensions(this.s) : new Uint8Array(0);
      const length = await readPayloadLength(this.s, this.maxObjectSize);
      let status: number = ObjectStatus.NORMAL;
      if (length === 0) {
        status = await this.s.varint();
        if (!VALID_STATUSES.has(status)) throw new ProtocolViolation(`invalid object status ${status}`);
        if (status !== ObjectStatus.NORMAL) {
          if (extensions.length) throw new ProtocolViolation("a status object carries extensions");
          this.ended = true;
        }
      }
      const payload = await this.s.bytes(length);
      if (h.subgroup === null) h.subgroup = object;
      this.prev = object;
      return { group: h.group, subgroup: h.subgroup, object, priority: h.priority, status, extensions, payload };
    } catch (e) {
      if (e instanceof NeedMoreData) throw new ProtocolViolation("subgroup stream ended inside an object");
      throw e;
    }
  }
}

export const FETCH_END_OF_NON_EXISTENT_RANGE = 0x8c;
export const FETCH_END_OF_UNKNOWN_RANGE = 0x10c;

export type FetchItem = MoqtObject | { endOfRange: true; unknown: boolean; group: number; object: number };

/** Parses a fetch stream whose type varint (0x05) was already read: `header()` gives the
 * Request ID, then `next()` objects and End of Range markers until null. */
export class FetchStreamParser {
  private priorGroup: number | null = null;
  private priorObject = 0;
  private priorSub: number | null = null;
  private priorPriority: number | null = null;

  constructor(
    private readonly s: StreamReader,
    private readonly maxObjectSize = DEFAULT_MAX_OBJECT_SIZE,
  ) {}

  async header(): Promise<number> {
    try {
      return await this.s.varint();
    } catch (e) {
      if (e instanceof NeedMoreData) throw new ProtocolViolation("fetch stream ended inside its header");
      throw e;
    }
  }

  async next(): Promise<FetchItem | null> {
    if (await this.s.atEnd()) return null;
    try {
      const flags = await this.s.varint();
      if (flags === FETCH_END_OF_NON_EXISTENT_RANGE || flags === FETCH_END_OF_UNKNOWN_RANGE) {
        const group = await this.s.varint();
        const object = await this.s.varint();
        this.priorGroup = group;
        this.priorObject = object;
        return { endOfRange: true, unknown: flags === FETCH_END_OF_UNKNOWN_RANGE, group, object };
      }
      if (flags >= 0x80) throw new ProtocolViolation(`invalid fetch serialization flags 0x${flags.toString(16)}`);
      let group: number;
      if (flags & 0x08) group = await this.s.varint();
      else if (this.priorGroup === null) throw new ProtocolViolation("fetch object refers to a missing prior group");
      else group = this.priorGroup;
      let subgroup: number;
      if (flags & 0x40) subgroup = -1;
      else {
        const mode = flags & 0x03;
        if (mode === 0) subgroup = 0;
        else if (mode === 3) subgroup = await this.s.varint();
        else if (this.priorSub === null) throw new ProtocolViolation("fetch object refers to a missing prior subgroup");
        else subgroup = mode === 1 ? this.priorSub : this.priorSub + 1;
      }
      let object: number;
      if (flags & 0x04) object = await this.s.varint();
      else if (this.priorGroup === null) throw new ProtocolViolation("fetch object refers to a missing prior object");
      else object = this.priorObject + 1;
      let priority: number;
      if (flags & 0x10) priority = await this.s.uint8();
      else if (this.priorPriority === null) throw new ProtocolViolation("fetch object refers to a missing prior priority");
      else priority = this.priorPriority;
      const extensions = flags & 0x20 ? await readExtensions(this.s) : new Uint8Array(0);
      const length = await readPayloadLength(this.s, this.maxObjectSize);
      const payload = await this.s.bytes(length);
      this.priorGroup = group;
      this.priorObject = object;
      this.priorSub = subgroup < 0 ? null : subgroup;
      this.priorPriority = priority;
      return {
        group,
        subgroup: subgroup < 0 ? object : subgroup,
        object,
        priority,
        status: ObjectStatus.NORMAL,
        extensions,
        payload,
      };
    } catch (e) {
      if (e instanceof NeedMoreData) throw new ProtocolViolation("fetch stream ended inside an object");
      throw e;
    }
  }
}

/** FETCH_HEADER bytes (used by tests and by a publisher answering FETCH). */
export function encodeFetchHeader(requestId: number): Uint8Array {
  return new Writer().varint(FETCH_HEADER_TYPE).varint(requestId).finish();
}


