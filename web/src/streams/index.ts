/** `@clutchcall/sdk/streams`: the public entry point (re-exports only). */

export { Streams, type StreamsOptions } from "./streams.js";
export {
  Asset,
  Assets,
  ControlClient,
  LiveInput,
  LiveInputs,
  newIdempotencyKey,
  uploadResumable,
  type AssetData,
  type AssetStatus,
  type ControlOptions,
  type CreateUploadOptions,
  type IdempotentOptions,
  type Ingest,
  type LiveInputData,
  type Page,
  type PlaybackTicket,
  type Rendition,
  type RetryOptions,
  type Revocation,
  type UploadOptions,
  type UploadProgress,
  type UploadTicket,
} from "./control.js";
export {
  ApiError,
  ConfigurationError,
  Conflict,
  ConnectionFailed,
  Forbidden,
  NotFound,
  PlaybackError,
  PublishError,
  RateLimited,
  ServerError,
  StreamsError,
  Unauthorized,
  ValidationError,
  type PlaybackErrorReason,
  type Problem,
  type PublishErrorReason,
} from "./errors.js";
export { Viewer, parseTarget, type DataPlane, type PlaybackTarget, type ViewerOptions } from "./viewer.js";
export { Publisher, type PublisherOptions, type PublisherState } from "./publisher.js";
export type { LiveState } from "./live.js";
export type { ReconnectInfo, ReconnectOptions } from "./reconnect.js";
export type { PlaybackCallbacks, PlaybackHandle } from "./playback.js";
export { decodeJwtPayload, resolveToken, tokenFromLocation, type TokenClaims } from "./token.js";
export { groupAt, parseVodCatalog, type VodCatalog, type VodTrack } from "./vod.js";
