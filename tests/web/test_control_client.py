"""The seed's control-plane recipes, as printed, in Chromium against ``clutchcall up``.

The page is on its own origin (``http://localhost:<port>``), the API on another
(``http://127.0.0.1:<port>``): every call crosses origins, so CORS is exercised. The SDK
is the bundle the control plane serves (``/sdk/streams.js``) through an import map.
The only edit to the printed code is the base URL (``https://app.clutchcall.dev`` ->
the stack's); the stack's demo org is the seed's ``org_abc``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import open_sdk_page, run_module, transpile_ts, typecheck_ts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Recipe 1, step 1 (verbatim).
RECIPE_1_STEP_1 = """\
import { Streams } from "@clutchcall/sdk/streams";

const streams = new Streams({
  baseUrl: "https://app.clutchcall.dev",
  apiKey:  process.env.CLUTCHCALL_CREDENTIALS!,
  orgId:   "org_abc",
});

const { input, streamKey } = await streams.liveInputs.create({
  name: "Live Demo", ingest: "fmp4",
});
// Persist streamKey now — it is never returned again.
"""

# Recipe 1, step 3 (verbatim).
RECIPE_1_STEP_3 = """\
const { url } = await input.signedPlaybackUrl({ ttlSeconds: 3600 });
// Hand `url` (or just the input id + a token) to each viewer.
"""

# Recipe 2, step 1 (verbatim; its `input`/`streamKey` are renamed in a block of their own).
RECIPE_2_STEP_1 = """\
const { input } = await streams.liveInputs.create({
  name: "Keynote 2026", ingest: "rtmp",
});
const { streamKey } = await input.rotateStreamKey();  // fresh key for the event
"""

SEED_BASE = "https://app.clutchcall.dev"


def _program(base_url: str) -> str:
    r1 = RECIPE_1_STEP_1.replace(SEED_BASE, base_url)
    return (
        r1
        + RECIPE_1_STEP_3
        + "const recipe1 = { input: input.toJSON(), streamKey, url };\n"
        + "const recipe2 = await (async () => {\n"
        + RECIPE_2_STEP_1
        + "return { input: input.toJSON(), streamKey, firstKeyAt: input.stream_key_rotated_at };\n"
        + "})();\n"
        + "Object.assign(globalThis, { __out: { recipe1, recipe2 } });\n"
    )


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    out: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return out


def test_recipes_type_check_against_the_published_declarations(tmp_path: Path) -> None:
    typecheck_ts({"recipes.ts": _program(SEED_BASE) + "export {};\n"}, tmp_path)


def test_recipe_1_and_2_control_calls_run_as_printed_in_the_browser(
    page: Any, up_stack: dict[str, Any], static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    base = up_stack["base_url"]
    open_sdk_page(page, static_server, tmp_path, f"{base}/sdk/streams.js",
                  env={"CLUTCHCALL_CREDENTIALS": up_stack["api_key"]})  # fmt: skip
    assert up_stack["org_id"] == "org_abc"
    out = run_module(page, transpile_ts(_program(base)), "globalThis.__out")
    assert page.console_errors == []

    r1 = out["recipe1"]
    assert r1["input"]["name"] == "Live Demo" and r1["input"]["ingest"] == "fmp4"
    assert r1["input"]["external_input_id"].startswith("lv_")
    assert r1["input"]["namespace"] == f"stream/org_abc/{r1['input']['external_input_id']}"
    assert r1["streamKey"]
    assert r1["url"].startswith(up_stack["relay_url"])
    assert _claims(r1["url"].split("token=")[1])["sub"] == r1["input"]["external_input_id"]

    r2 = out["recipe2"]
    assert r2["input"]["ingest"] == "rtmp" and r2["input"]["name"] == "Keynote 2026"
    assert r2["streamKey"] and r2["streamKey"] != r1["streamKey"]

    # What the browser did is what the API holds.
    headers = {"Authorization": f"Bearer {up_stack['api_key']}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as api:
        got = api.get(f"/v1/live_inputs/{r2['input']['id']}").json()
        assert got["external_input_id"] == r2["input"]["external_input_id"]
        # rotateStreamKey() replaced the key create() gave (the recipe keeps the old object)
        assert got["stream_key_rotated_at"] > r2["input"]["stream_key_rotated_at"]


ERRORS = """\
import { Streams, Unauthorized, NotFound, ValidationError, ConnectionFailed, ConfigurationError } from "@clutchcall/sdk/streams";
const base = %(base)s;
const out = {};
async function outcome(p) {
  try { await p; return "resolved"; }
  catch (e) { return { name: e.constructor.name, status: e.status ?? null, type: e.type ?? null,
                        detail: e.detail ?? e.message, isUnauthorized: e instanceof Unauthorized,
                        isNotFound: e instanceof NotFound, isValidation: e instanceof ValidationError,
                        isConnection: e instanceof ConnectionFailed }; }
}
const good = new Streams({ baseUrl: base, apiKey: %(key)s, orgId: "org_abc" });
out.badKey = await outcome(new Streams({ baseUrl: base, apiKey: "ck_wrong", orgId: "org_abc" }).liveInputs.create({ name: "x" }));
out.otherOrg = await outcome(new Streams({ baseUrl: base, apiKey: %(key)s, orgId: "org_other" }).liveInputs.list());
out.missing = await outcome(good.liveInputs.get({ id: "li_doesnotexist" }));
out.invalid = await outcome(good.liveInputs.create({ name: "" }));
out.unreachable = await outcome(new Streams({ baseUrl: "http://127.0.0.1:9", apiKey: "ck_x" }).liveInputs.list());
try { new Streams({ relayUrl: "https://relay" }).liveInputs; out.noControl = "no error"; }
catch (e) { out.noControl = e instanceof ConfigurationError ? "ConfigurationError" : String(e); }
globalThis.__out = out;
"""


def test_control_errors_are_typed_from_problem_json(
    page: Any, up_stack: dict[str, Any], static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    base = up_stack["base_url"]
    open_sdk_page(page, static_server, tmp_path, f"{base}/sdk/streams.js")
    code = ERRORS % {"base": json.dumps(base), "key": json.dumps(up_stack["api_key"])}
    out = run_module(page, code, "globalThis.__out")
    assert out["badKey"]["name"] == "Unauthorized" and out["badKey"]["status"] == 401
    assert out["badKey"]["type"].endswith("/unauthorized") and out["badKey"]["isUnauthorized"]
    assert out["otherOrg"]["name"] == "NotFound" and out["otherOrg"]["isNotFound"]
    assert out["missing"]["name"] == "NotFound" and "li_doesnotexist" in out["missing"]["detail"]
    assert out["invalid"]["name"] == "ValidationError" and out["invalid"]["status"] == 422
    assert out["unreachable"]["name"] == "ConnectionFailed" and out["unreachable"]["isConnection"]
    assert out["noControl"] == "ConfigurationError"


def test_the_sdk_bundle_and_its_declarations_are_served(up_stack: dict[str, Any]) -> None:
    base = up_stack["base_url"]
    with httpx.Client(base_url=base, timeout=10) as http:
        js = http.get("/sdk/streams.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert (
            "Streams" in js.text
            and "sourceMappingURL" in js.text
            and js.headers["access-control-allow-origin"] == "*"
        )
        assert (
            http.get("/sdk/streams.js", headers={"If-None-Match": js.headers["etag"]}).status_code
            == 304
        )
        assert "export" in http.get("/sdk/streams.d.ts").text
        assert http.get("/sdk/config.json").json()["relay_url"] == up_stack["relay_url"]
        missing = http.get("/sdk/nope.js")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
