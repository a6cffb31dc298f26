/**
 * Draft-16 control messages: `Type (i), Length (16), Payload`.
 *
 * {@link encodeControl} / {@link decodeControl} own the framing; each message is a
 * plain object tagged by `kind`. Parameters stay as Key-Value-Pairs (`params`);
 * draft-16's strict rule applies on decode: an unknown message parameter, a payload
 * that ends early or has bytes left over, or an unknown type is a ProtocolViolation.
 * SUBSCRIBE_NAMESPACE / NAMESPACE travel on their own bidirectional streams and are
 * not part of this codec (this SDK neither sends nor accepts them).
 */
import {
  type KeyValue,
  type Location,
  type Namespace,
  checkMessageParams,
  readCountedPairs,
  readNamespace,
  readPairs,
  readReason,
  writeCountedPairs,
  writeNamespace,
  writePairs,
  writeReason,
  MAX_FULL_TRACK_NAME_LENGTH,
} from "./params.js";
import { NeedMoreData, ProtocolViolation, Reader, Writer, fromUtf8, utf8 } from "./wire.js";

export const MessageType = {
  REQUEST_UPDATE: 0x2,
  SUBSCRIBE: 0x3,
  SUBSCRIBE_OK: 0x4,
  REQUEST_ERROR: 0x5,
  PUBLISH_NAMESPACE: 0x6,
  REQUEST_OK: 0x7,
  PUBLISH_NAMESPACE_DONE: 0x9,
  UNSUBSCRIBE: 0xa,
  PUBLISH_DONE: 0xb,
  PUBLISH_NAMESPACE_CANCEL: 0xc,
  TRACK_STATUS: 0xd,
  GOAWAY: 0x10,
  MAX_REQUEST_ID: 0x15,
  FETCH: 0x16,
  FETCH_CANCEL: 0x17,
  FETCH_OK: 0x18,
  REQUESTS_BLOCKED: 0x1a,
  PUBLISH: 0x1d,
  PUBLISH_OK: 0x1e,
  CLIENT_SETUP: 0x20,
  SERVER_SETUP: 0x21,
} as const;

export const FetchType = { STANDALONE: 0x1, RELATIVE_JOINING: 0x2, ABSOLUTE_JOINING: 0x3 } as const;

export type ControlMessage =
  | { kind: "client_setup"; params: KeyValue[] }
  | { kind: "server_setup"; params: KeyValue[] }
  | { kind: "subscribe"; requestId: number; namespace: Namespace; name: string; params: KeyValue[] }
  | { kind: "track_status"; requestId: number; namespace: Namespace; name: string; params: KeyValue[] }
  | { kind: "subscribe_ok"; requestId: number; trackAlias: number; params: KeyValue[]; extensions: KeyValue[] }
  | { kind: "request_error"; requestId: number; code: number; retryInterval: number; reason: string }
  | { kind: "request_ok"; requestId: number; params: KeyValue[] }
  | { kind: "request_update"; requestId: number; existingRequestId: number; params: KeyValue[] }
  | { kind: "unsubscribe"; requestId: number }
  | { kind: "publish_done"; requestId: number; statusCode: number; streamCount: number; reason: string }
  | { kind: "publish_namespace"; requestId: number; namespace: Namespace; params: KeyValue[] }
  | { kind: "publish_namespace_done"; requestId: number }
  | { kind: "publish_namespace_cancel"; requestId: number; code: number; reason: string }
  | {
      kind: "publish";
      requestId: number;
      namespace: Namespace;
      name: string;
      trackAlias: number;
      params: KeyValue[];
      extensions: KeyValue[];
    }
  | { kind: "publish_ok"; requestId: number; params: KeyValue[] }
  | {
      kind: "fetch";
      requestId: number;
      fetchType: number;
      joining?: { requestId: number; start: number };
      standalone?: { namespace: Namespace; name: string; start: Location; end: Location };
      params: KeyValue[];
    }
  | { kind: "fetch_ok"; requestId: number; endOfTrack: boolean; end: Location; params: KeyValue[]; extensions: KeyValue[] }
  | { kind: "fetch_cancel"; requestId: number }
  | { kind: "goaway"; uri: string }
  | { kind: "max_request_id"; maxRequestId: number }
  | { kind: "requests_blocked"; maxRequestId: number };

export type MessageKind = ControlMessage["kind"];

const TYPES: Record<MessageKind, number> = {
  client_setup: MessageType.CLIENT_SETUP,
  server_setup: MessageType.SERVER_SETUP,
  subscribe: MessageType.SUBSCRIBE,
  track_status: MessageType.TRACK_STATUS,
  subscribe_ok: MessageType.SUBSCRIBE_OK,
  request_error: MessageType.REQUEST_ERROR,
  request_ok: MessageType.REQUEST_OK,
  request_update: MessageType.REQUEST_UPDATE,
  unsubscribe: MessageType.UNSUBSCRIBE,
  publish_done: MessageType.PUBLISH_DONE,
  publish_namespace: MessageType.PUBLISH_NAMESPACE,
  publish_namespace_done: MessageType.PUBLISH_NAMESPACE_DONE,
  publish_namespace_cancel: MessageType.PUBLISH_NAMESPACE_CANCEL,
  publish: MessageType.PUBLISH,
  publish_ok: MessageType.PUBLISH_OK,
  fetch: MessageType.FETCH,
  fetch_ok: MessageType.FETCH_OK,
  fetch_cancel: MessageType.FETCH_CANCEL,
  goaway: MessageType.GOAWAY,
  max_request_id: MessageType.MAX_REQUEST_ID,
  requests_blocked: MessageType.REQUESTS_BLOCKED,
};

const KINDS = new Map<number, MessageKind>(Object.entries(TYPES).map(([k, t]) => [t, k as MessageKind]));

function writeTrackName(w: Writer, ns: Namespace, name: string): void {
  writeNamespace(w, ns);
  const raw = utf8(name);
  let total = raw.length;
  for (const f of ns) total += utf8(f).length;
  if (total > MAX_FULL_TRACK_NAME_LENGTH) throw new RangeError("full track name longer than 4096 bytes");
  w.lengthPrefixed(raw);
}

function readTrackName(r: Reader): [Namespace, string] {
  const ns = readNamespace(r);
  const raw = r.lengthPrefixed(MAX_FULL_TRACK_NAME_LENGTH, "track name");
  return [ns, fromUtf8(raw, "track name")];
}

function messageParams(r: Reader): KeyValue[] {
  const params = readCountedPairs(r);
  checkMessageParams(params);
  return params;
}

function readFlag(r: Reader, what: string): boolean {
  const v = r.uint8();
  if (v > 1) throw new ProtocolViolation(`${what} is ${v} (0 or 1)`);
  return v === 1;
}

/** The payload of `msg` (no type, no length). */
export function encodePayload(msg: ControlMessage): Uint8Array {
  const w = new Writer();
  switch (msg.kind) {
    case "client_setup":
    case "server_setup":
      writeCountedPairs(w, msg.params);
      break;
    case "subscribe":
    case "track_status":
      w.varint(msg.requestId);
      writeTrackName(w, msg.namespace, msg.name);
      writeCountedPairs(w, msg.params);
      break;
    case "subscribe_ok":
      w.varint(msg.requestId).varint(msg.trackAlias);
      writeCountedPairs(w, msg.params);
      writePairs(w, msg.extensions);
      break;
    case "request_error":
      w.varint(msg.requestId).varint(msg.code).varint(msg.retryInterval);
      writeReason(w, msg.reason);
      break;
    case "request_ok":
    case "publish_ok":
      w.varint(msg.requestId);
      writeCountedPairs(w, msg.params);
      break;
    case "request_update":
      w.varint(msg.requestId).varint(msg.existingRequestId);
      writeCountedPairs(w, msg.params);
      break;
    case "unsubscribe":
    case "publish_namespace_done":
    case "fetch_cancel":
      w.varint(msg.requestId);
      break;
    case "publish_done":
      w.varint(msg.requestId).varint(msg.statusCode).varint(msg.streamCount);
      writeReason(w, msg.reason);
      break;
    case "publish_namespace":
      w.varint(msg.requestId);
      writeNamespace(w, msg.namespace);
      writeCountedPairs(w, msg.params);
      break;
    case "publish_namespace_cancel":
      w.varint(msg.requestId).varint(msg.code);
      writeReason(w, msg.reason);
      break;
    case "publish":
      w.varint(msg.requestId);
      writeTrackName(w, msg.namespace, msg.name);
      w.varint(msg.trackAlias);
      writeCountedPairs(w, msg.params);
      writePairs(w, msg.extensions);
      break;
    case "fetch":
      w.varint(msg.requestId).varint(msg.fetchType);
      if (msg.fetchType === FetchType.STANDALONE) {
        const s = msg.standalone;
        if (!s) throw new RangeError("a standalone FETCH needs its track and range");
        writeTrackName(w, s.namespace, s.name);
        w.varint(s.start.group).varint(s.start.object).varint(s.end.group).varint(s.end.object);
      } else {
        const j = msg.joining;
        if (!j) throw new RangeError("a joining FETCH needs its subscription");
        w.varint(j.requestId).varint(j.start);
      }
      writeCountedPairs(w, msg.params);
      break;
    case "fetch_ok":
      w.varint(msg.requestId).uint8(msg.endOfTrack ? 1 : 0).varint(msg.end.group).varint(msg.end.object);
      writeCountedPairs(w, msg.params);
      writePairs(w, msg.extensions);
      break;
    case "goaway":
      w.lengthPrefixed(utf8(msg.uri));
      break;
    case "max_request_id":
    case "requests_blocked":
      w.varint(msg.maxRequestId);
      break;
  }
  return w.finish();
}

/** `Type (i), Length (16), Payload` for `msg`. */
export function encodeControl(msg: ControlMessage): Uint8Array {
  const payload = encodePayload(msg);
  if (payload.length > 0xffff) throw new RangeError(`${msg.kind} payload of ${payload.length} bytes`);
  return new Writer(payload.length + 8).varint(TYPES[msg.kind]).uint16(payload.length).bytes(payload).finish();
}

/** Decode the payload of a message of `type` (the whole of `r`). */
export function decodePayload(type: number, r: Reader): ControlMessage {
  const kind = KINDS.get(type);
  if (kind === undefined) throw new ProtocolViolation(`unknown control message type 0x${type.toString(16)}`);
  let msg: ControlMessage;
  try {
    msg = decodeKind(kind, r);
  } catch (e) {
    if (e instanceof NeedMoreData) throw new ProtocolViolation(`${kind}: fields run past the message length`);
    throw e;
  }
  if (!r.eof()) throw new ProtocolViolation(`${kind}: ${r.remaining} bytes after the last field`);
  return msg;
}

function decodeKind(kind: MessageKind, r: Reader): ControlMessage {
  switch (kind) {
    case "client_setup":
    case "server_setup":
      return { kind, params: readCountedPairs(r) };
    case "subscribe":
    case "track_status": {
      const requestId = r.varint();
      const [namespace, name] = readTrackName(r);
      return { kind, requestId, namespace, name, params: messageParams(r) };
    }
    case "subscribe_ok": {
      const requestId = r.varint();
      const trackAlias = r.varint();
      const params = messageParams(r);
      return { kind, requestId, trackAlias, params, extensions: readPairs(r, null) };
    }
    case "request_error": {
      const requestId = r.varint();
      const code = r.varint();
      const retryInterval = r.varint();
      return { kind, requestId, code, retryInterval, reason: readReason(r) };
    }
    case "request_ok":
    case "publish_ok": {
      const requestId = r.varint();
      return { kind, requestId, params: messageParams(r) };
    }
    case "request_update": {
      const requestId = r.varint();
      const existingRequestId = r.varint();
      return { kind, requestId, existingRequestId, params: messageParams(r) };
    }
    case "unsubscribe":
    case "publish_namespace_done":
    case "fetch_cancel":
      return { kind, requestId: r.varint() };
    case "publish_done": {
      const requestId = r.varint();
      const statusCode = r.varint();
      const streamCount = r.varint();
      return { kind, requestId, statusCode, streamCount, reason: readReason(r) };
    }
    case "publish_namespace": {
      const requestId = r.varint();
      const namespace = readNamespace(r);
      return { kind, requestId, namespace, params: messageParams(r) };
    }
    case "publish_namespace_cancel": {
      const requestId = r.varint();
      const code = r.varint();
      return { kind, requestId, code, reason: readReason(r) };
    }
    case "publish": {
      const requestId = r.varint();
      const [namespace, name] = readTrackName(r);
      const trackAlias = r.varint();
      const params = messageParams(r);
      return { kind, requestId, namespace, name, trackAlias, params, extensions: readPairs(r, null) };
    }
    case "fetch": {
      const requestId = r.varint();
      const fetchType = r.varint();
      if (fetchType === FetchType.STANDALONE) {
        const [namespace, name] = readTrackName(r);
        const start = { group: r.varint(), object: r.varint() };
        const end = { group: r.varint(), object: r.varint() };
        return { kind, requestId, fetchType, standalone: { namespace, name, start, end }, params: messageParams(r) };
      }
      if (fetchType !== FetchType.RELATIVE_JOINING && fetchType !== FetchType.ABSOLUTE_JOINING) {
        throw new ProtocolViolation(`unknown fetch type ${fetchType}`);
      }
      const joining = { requestId: r.varint(), start: r.varint() };
      return { kind, requestId, fetchType, joining, params: messageParams(r) };
    }
    case "fetch_ok": {
      const requestId = r.varint();
      const endOfTrack = readFlag(r, "end of track");
      const end = { group: r.varint(), object: r.varint() };
      const params = messageParams(r);
      return { kind, requestId, endOfTrack, end, params, extensions: readPairs(r, null) };
    }
    case "goaway":
      return { kind, uri: fromUtf8(r.lengthPrefixed(8192, "GOAWAY URI"), "GOAWAY URI") };
    case "max_request_id":
    case "requests_blocked":
      return { kind, maxRequestId: r.varint() };
  }
}

/** Decode one framed message from the start of `bytes` (sync; NeedMoreData if incomplete).
 * Returns the message and the number of bytes it took. */
export function decodeControl(bytes: Uint8Array): [ControlMessage, number] {
  const r = new Reader(bytes);
  const type = r.varint();
  const length = r.uint16();
  const body = r.sub(length);
  return [decodePayload(type, body), r.pos];
}
