/**
 * MoQT draft-16 codes (session close, REQUEST_ERROR, PUBLISH_DONE) and the session's errors.
 */

/** Session termination codes (draft-16). */
export const SessionCloseCode = {
  NO_ERROR: 0x0,
  INTERNAL_ERROR: 0x1,
  UNAUTHORIZED: 0x2,
  PROTOCOL_VIOLATION: 0x3,
  INVALID_REQUEST_ID: 0x4,
  KEY_VALUE_FORMATTING_ERROR: 0x6,
  TOO_MANY_REQUESTS: 0x7,
  CONTROL_MESSAGE_TIMEOUT: 0x11,
  MALFORMED_AUTH_TOKEN: 0x16,
  EXPIRED_AUTH_TOKEN: 0x18,
} as const;

/** REQUEST_ERROR codes (draft-16). */
export const RequestErrorCode = {
  INTERNAL_ERROR: 0x0,
  UNAUTHORIZED: 0x1,
  TIMEOUT: 0x2,
  NOT_SUPPORTED: 0x3,
  MALFORMED_AUTH_TOKEN: 0x4,
  EXPIRED_AUTH_TOKEN: 0x5,
  DOES_NOT_EXIST: 0x10,
} as const;

/** PUBLISH_DONE status codes (draft-16). */
export const PublishDoneCode = {
  INTERNAL_ERROR: 0x0,
  UNAUTHORIZED: 0x1,
  TRACK_ENDED: 0x2,
  SUBSCRIPTION_ENDED: 0x3,
  GOING_AWAY: 0x4,
  EXPIRED: 0x5,
  TOO_FAR_BEHIND: 0x6,
  MALFORMED_TRACK: 0x12,
} as const;

/** How a session ended. `code` null: the connection failed or was lost (no MoQT code). */
export interface SessionCloseInfo {
  code: number | null;
  reason: string;
  byPeer: boolean;
}

export class MoqtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The peer refused a request (REQUEST_ERROR). */
export class RequestRefused extends MoqtError {
  constructor(
    readonly code: number,
    readonly reason: string,
    readonly retryInterval = 0,
  ) {
    super(`request refused (0x${code.toString(16)}): ${reason}`);
  }
}

/** The session is closed (or could not be established). */
export class SessionClosed extends MoqtError {
  constructor(readonly info: SessionCloseInfo) {
    super(`MoQT session closed${info.code === null ? "" : ` (0x${info.code.toString(16)})`}: ${info.reason}`);
  }
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
