/**
 * Typed errors of the browser SDK.
 *
 * Control-plane calls reject with an {@link ApiError} subclass carrying the RFC 9457
 * problem the server answered (`status`, `type`, `title`, `detail`, the whole `body`);
 * an unreachable server rejects with {@link ConnectionFailed}. Playback and publishing
 * report a {@link PlaybackError} / {@link PublishError} whose `reason` is one of a
 * closed set, so applications can branch on it.
 */

/** Base class of every error the SDK throws. */
export class StreamsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The client lacks something the call needs (no baseUrl for a control-plane call, a bad id...). */
export class ConfigurationError extends StreamsError {}

/** The control plane could not be reached (DNS, refused, CORS refusal, TLS, abort). */
export class ConnectionFailed extends StreamsError {}

/** An RFC 9457 problem body. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
  [key: string]: unknown;
}

/** The control plane answered with an error (an RFC 9457 problem). */
export class ApiError extends StreamsError {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly body: Problem;
  readonly headers: Headers;

  constructor(status: number, body: Problem, headers: Headers = new Headers()) {
    const title = typeof body.title === "string" ? body.title : `HTTP ${status}`;
    const detail = typeof body.detail === "string" ? body.detail : "";
    super(detail ? `${status} ${title}: ${detail}` : `${status} ${title}`);
    this.status = status;
    this.type = typeof body.type === "string" ? body.type : "about:blank";
    this.title = title;
    this.detail = detail;
    this.body = body;
    this.headers = headers;
  }
}

/** 401: missing, wrong or revoked API key. */
export class Unauthorized extends ApiError {}
/** 403: the credentials do not allow this. */
export class Forbidden extends ApiError {}
/** 404: no such resource in this org (another org's resources look the same). */
export class NotFound extends ApiError {}
/** 409: the resource already exists, or an upload offset differs (`body.offset`). */
export class Conflict extends ApiError {}
/** 400/422: the request was refused as invalid; `errors` lists what was wrong. */
export class ValidationError extends ApiError {
  get errors(): Array<{ loc: string[]; msg: string; type: string }> {
    const errors = this.body["errors"];
    return Array.isArray(errors) ? (errors as Array<{ loc: string[]; msg: string; type: string }>) : [];
  }
}
/** 429: too many failed authentications; retry after `retryAfter` seconds. */
export class RateLimited extends ApiError {
  get retryAfter(): number | null {
    const value = this.headers.get("retry-after");
    const n = value === null ? NaN : Number(value);
    return Number.isFinite(n) ? n : null;
  }
}
/** 5xx: the control plane (or its database/bus) failed; usually worth a retry. */
export class ServerError extends ApiError {}

/** The ApiError subclass for an HTTP status. */
export function errorClassFor(status: number): typeof ApiError {
  if (status === 401) return Unauthorized;
  if (status === 403) return Forbidden;
  if (status === 404) return NotFound;
  if (status === 409) return Conflict;
  if (status === 400 || status === 422) return ValidationError;
  if (status === 429) return RateLimited;
  if (status >= 500) return ServerError;
  return ApiError;
}

/** The typed error for a failed response: its problem JSON (or its text as `detail`). */
export async function apiErrorFrom(response: Response): Promise<ApiError> {
  let body: Problem = {};
  const text = await response.text().catch(() => "");
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Problem;
    else body = { detail: text };
  } catch {
    body = { detail: text.slice(0, 500) };
  }
  if (body.title === undefined) body = { ...body, title: response.statusText || `HTTP ${response.status}` };
  const cls = errorClassFor(response.status);
  return new cls(response.status, body, response.headers);
}

/** Why playback failed or stopped. */
export type PlaybackErrorReason = "auth_failed" | "not_found" | "network" | "unsupported" | "decode";

/** A playback failure (live or on demand), passed to `onError` and thrown by `play()`. */
export class PlaybackError extends StreamsError {
  readonly reason: PlaybackErrorReason;
  readonly detail: string;
  constructor(reason: PlaybackErrorReason, detail = "", options?: { cause?: unknown }) {
    super(detail ? `${reason}: ${detail}` : reason, options);
    this.reason = reason;
    this.detail = detail;
  }
}

/** Why publishing failed or stopped. */
export type PublishErrorReason = "auth_failed" | "not_found" | "network" | "unsupported" | "refused";

/** A publishing failure, passed to the publisher's `onError` and thrown by `publish()`. */
export class PublishError extends StreamsError {
  readonly reason: PublishErrorReason;
  readonly detail: string;
  constructor(reason: PublishErrorReason, detail = "", options?: { cause?: unknown }) {
    super(detail ? `${reason}: ${detail}` : reason, options);
    this.reason = reason;
    this.detail = detail;
  }
}

/** The playback reason for an HTTP status (401/403 auth_failed, 404/410 not_found, else network). */
export function playbackReasonForStatus(status: number): PlaybackErrorReason {
  if (status === 401 || status === 403) return "auth_failed";
  if (status === 404 || status === 410) return "not_found";
  return "network";
}
