/**
 * Reconnecting after a lost session or a GOAWAY: the policy both the live viewer
 * (./live.ts) and the publisher (./publisher.ts) follow, the Python SDK's semantics
 * (clutchcall/streams/_viewer.py: a loss or a GOAWAY is `network`, retried within a
 * window that restarts after a good session; `auth_failed` and a normal end never are).
 *
 * - Delays: `initialDelayMs` x 2^(attempt-1), capped at `maxDelayMs`, each drawn
 *   uniformly from [delay/2, delay] ("equal jitter": viewers of a restarted relay do not
 *   come back in one burst). A GOAWAY's first attempt has no delay (the old session is
 *   still up: make before break).
 * - Gives up after `attempts` failed attempts or `windowMs` after the loss, whichever
 *   comes first; then `onError` with `network`.
 * - Where to: a GOAWAY's new session URI when it names one, else in turn the URL in use
 *   and the `fallbackUrls` (other POPs, the same token).
 */

/** How a viewer or a publisher reconnects (`false`: never; the loss is then `onError(network)`). */
export interface ReconnectOptions {
  /** Failed attempts before giving up (default 10). */
  attempts?: number;
  /** Time from the loss to giving up, ms (default 20000). */
  windowMs?: number;
  /** The first retry's delay, ms (default 250). */
  initialDelayMs?: number;
  /** The longest delay between attempts, ms (default 3000). */
  maxDelayMs?: number;
}

/** What `onReconnecting` is told before each attempt. */
export interface ReconnectInfo {
  /** 1 for the first attempt after a loss. */
  attempt: number;
  /** Wait before this attempt, ms. */
  delayMs: number;
  /** `goaway`: the relay asked us to move; `network`: the session was lost or refused. */
  cause: "goaway" | "network";
  /** Why (the close reason, the refusal). */
  detail: string;
  /** Where this attempt connects. */
  url: string;
}

const DEFAULTS: Required<ReconnectOptions> = { attempts: 10, windowMs: 20000, initialDelayMs: 250, maxDelayMs: 3000 };

/** The options with their defaults; throws RangeError on a bad value. */
export function reconnectPolicy(options: ReconnectOptions | false | undefined): Required<ReconnectOptions> | null {
  if (options === false) return null;
  const p = { ...DEFAULTS, ...(options ?? {}) };
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`reconnect.${k} must be a number >= 0, got ${String(v)}`);
  }
  if (p.maxDelayMs < p.initialDelayMs) p.maxDelayMs = p.initialDelayMs;
  return p;
}

/** One outage: the attempts made and the window left. */
export class Backoff {
  private attempt = 0;
  private readonly deadline: number;

  constructor(
    private readonly policy: Required<ReconnectOptions>,
    private readonly random: () => number = Math.random,
    now: number = performance.now(),
  ) {
    this.deadline = now + policy.windowMs;
  }

  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt, or null when the attempts or the window are used up. */
  next(immediate = false, now: number = performance.now()): number | null {
    if (this.attempt >= this.policy.attempts || now >= this.deadline) return null;
    this.attempt += 1;
    if (immediate && this.attempt === 1) return 0;
    const cap = Math.min(this.policy.maxDelayMs, this.policy.initialDelayMs * 2 ** (this.attempt - 1));
    const delay = cap / 2 + (cap / 2) * this.random();
    // Never past the window: the last attempt is made at its end at the latest.
    return Math.max(0, Math.min(delay, this.deadline - now));
  }

  /** Time left in the window, ms. */
  left(now: number = performance.now()): number {
    return Math.max(0, this.deadline - now);
  }
}

/** Where attempt `index` connects: the GOAWAY's URI if any, else the URLs in turn. */
export function reconnectUrl(urls: readonly string[], index: number, goawayUri: string): string {
  if (goawayUri) return goawayUri;
  return urls[index % urls.length] as string;
}

/** Wait `ms`, or less once `cancelled()` turns true (checked every 50 ms). */
export function sleep(ms: number, cancelled: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || cancelled()) return resolve();
    const started = performance.now();
    const poll = (): void => {
      if (cancelled() || performance.now() - started >= ms) resolve();
      else setTimeout(poll, Math.min(50, ms));
    };
    setTimeout(poll, Math.min(50, ms));
  });
}
