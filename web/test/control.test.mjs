// Problem JSON to typed errors and tokens (src/streams/errors.ts, token.ts), on real
// fetch Responses and a real ES256 JWT signed with node's crypto.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import {
  ApiError, Conflict, NotFound, PlaybackError, RateLimited, ServerError, Unauthorized, ValidationError,
  apiErrorFrom, playbackReasonForStatus,
} from "../dist/lib/streams/errors.js";
import { decodeJwtPayload, resolveToken, tokenFromLocation, tokenTtl } from "../dist/lib/streams/token.js";

const problem = (status, body, headers = {}) =>
  new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });

test("problem JSON maps to typed ApiErrors", async () => {
  const e401 = await apiErrorFrom(problem(401, { type: "https://clutchcall.dev/problems/unauthorized", title: "Unauthorized", status: 401, detail: "a valid API key is required" }));
  assert.ok(e401 instanceof Unauthorized && e401 instanceof ApiError);
  assert.equal(e401.detail, "a valid API key is required");
  assert.ok(e401.type.endsWith("/unauthorized"));
  assert.ok((await apiErrorFrom(problem(404, { title: "Not Found" }))) instanceof NotFound);
  const c = await apiErrorFrom(problem(409, { title: "Conflict", offset: 42 }));
  assert.ok(c instanceof Conflict);
  assert.equal(c.body.offset, 42);
  const v = await apiErrorFrom(problem(422, { title: "Validation Failed", errors: [{ loc: ["body", "name"], msg: "too short", type: "x" }] }));
  assert.ok(v instanceof ValidationError);
  assert.equal(v.errors[0].msg, "too short");
  const r = await apiErrorFrom(problem(429, { title: "Too Many Requests" }, { "retry-after": "7" }));
  assert.ok(r instanceof RateLimited);
  assert.equal(r.retryAfter, 7);
  const s = await apiErrorFrom(new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
  assert.ok(s instanceof ServerError);
  assert.equal(s.title, "Bad Gateway");
  assert.match(s.detail, /bad gateway/);
});

test("playback reasons for HTTP statuses", () => {
  assert.equal(playbackReasonForStatus(401), "auth_failed");
  assert.equal(playbackReasonForStatus(403), "auth_failed");
  assert.equal(playbackReasonForStatus(404), "not_found");
  assert.equal(playbackReasonForStatus(503), "network");
  const e = new PlaybackError("auth_failed", "token expired");
  assert.equal(e.name, "PlaybackError");
  assert.equal(e.message, "auth_failed: token expired");
});

test("tokens: from the page URL, decoded without verification", () => {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + 600;
  const input = `${b64({ alg: "ES256", typ: "JWT", kid: "k1" })}.${b64({ sub: "lv_abc", ns: "stream/org_abc/lv_abc", exp })}`;
  const jwt = `${input}.${sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
  assert.deepEqual(decodeJwtPayload(jwt), { sub: "lv_abc", ns: "stream/org_abc/lv_abc", exp });
  assert.ok(tokenTtl(jwt) > 590 && tokenTtl(jwt) <= 600);
  assert.equal(decodeJwtPayload("not.a-jwt"), null);
  assert.equal(decodeJwtPayload("a.!!!.c"), null);
  assert.equal(tokenFromLocation(`https://app.test/watch?token=${jwt}`), jwt);
  assert.equal(tokenFromLocation(`https://app.test/watch#token=${jwt}`), jwt);
  assert.equal(tokenFromLocation("https://app.test/watch"), null);
  assert.equal(resolveToken("explicit", `https://x/?token=${jwt}`), "explicit");
  assert.equal(resolveToken(null, `https://x/?token=${jwt}`), jwt);
});
