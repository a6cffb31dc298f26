/**
 * MoQT draft-16 over WebTransport for the browser: both roles in one session.
 *
 * ```ts
 * import { MoqtSession, RequestRefused, SessionClosed } from "../moqt/index.js";
 *
 * // Connect (ALPN / WebTransport protocol "moqt-16"). `token` is the AUTHORIZATION
 * // TOKEN of CLIENT_SETUP (USE_VALUE, token type 0): a playback JWT for a viewer, the
 * // stream key for a publisher. Self-signed dev relays: pin the certificate's SHA-256.
 * const session = await MoqtSession.connect("https://127.0.0.1:4444/", {
 *   token, serverCertificateHashes: [hash],   // hash: Uint8Array(32) | ArrayBuffer
 * });                                          // rejects with SessionClosed {info: {code, reason}}
 * session.closed.then(({ code, reason, byPeer }) => ...);   // code null: network failure
 *
 * // Subscriber. Default filter LargestObject; `join: 0` adds a joining FETCH of the
 * // current group (delivered first, `fetched: true`, then {type: "fetchDone"}).
 * const sub = await session.subscribe("stream/org_abc/lv_x", ".catalog", { join: 0, priority: 0 });
 * // rejects with RequestRefused {code, reason} (RequestErrorCode.DOES_NOT_EXIST, UNAUTHORIZED...)
 * sub.largest;                         // {group, object} | null, from SUBSCRIBE_OK
 * for await (const item of sub) {      // ends when the publisher is done / unsubscribe();
 *   if (item.type === "object") item.group, item.object, item.payload;   // Uint8Array
 *   if (item.type === "end") item.group;   // that subgroup stream ended (reset: true if cut)
 * }
 * await sub.ended;                     // {statusCode: PublishDoneCode | null, reason}
 * sub.unsubscribe();
 *
 * // Publisher, either way the origin accepts:
 * // (a) PUBLISH each track; the stream key rides as the request's AUTHORIZATION TOKEN.
 * const video = await session.publish(ns, "video", { authToken: streamKey, priority: 1 });
 * // (b) PUBLISH_NAMESPACE, then answer the relay's SUBSCRIBEs for served tracks.
 * const pubNs = await session.publishNamespace(ns, { authToken: streamKey });
 * const catalog = session.serveTrack(ns, ".catalog", { priority: 0 });
 *
 * const group = video.openGroup();     // next group id (or openGroup(id)); closes the previous
 * await group.write(moofMdat);         // objects 0, 1, 2... of the group (one subgroup stream
 * await group.close();                 //   per subscriber, FIN at close)
 * await video.end();                   // PUBLISH_DONE TRACK_ENDED to every subscriber
 * pubNs.done();                        // PUBLISH_NAMESPACE_DONE
 * session.close(0, "bye");
 * ```
 *
 * Wire codecs (for tests and tools): {@link encodeControl} / {@link decodeControl},
 * subgroup and fetch stream parsers in `data.ts`, varints in `wire.ts`.
 */
export {
  ALPN_DRAFT_16,
  GroupWriter,
  MoqtError,
  MoqtSession,
  NamespacePublication,
  PublishDoneCode,
  RequestErrorCode,
  RequestRefused,
  SessionCloseCode,
  SessionClosed,
  Subscription,
  TrackWriter,
} from "./session.js";
export type { ConnectOptions, SessionCloseInfo, SubscribeOptions, SubscriptionDone, SubscriptionItem } from "./session.js";
export { type ControlMessage, FetchType, MessageType, decodeControl, decodePayload, encodeControl } from "./messages.js";
export {
  type AuthToken,
  FilterType,
  type KeyValue,
  type Location,
  MessageParam,
  type Namespace,
  SetupParam,
  type SubscriptionFilter,
  TrackExtension,
  decodeAuthToken,
  encodeAuthToken,
  toNamespace,
  useValueToken,
} from "./params.js";
export {
  FETCH_HEADER_TYPE,
  FetchStreamParser,
  type MoqtObject,
  ObjectStatus,
  SubgroupStreamParser,
  classifyStream,
  encodeFetchHeader,
  encodeSubgroupHeader,
  encodeSubgroupObject,
} from "./data.js";
export { NeedMoreData, ProtocolViolation, Reader, StreamReader, Writer, encodeVarint } from "./wire.js";
