/**
 * The web console (served at /console/ by the control plane and `clutchcall up`):
 * sign in with an API key, list and create live inputs, go live from the webcam, watch
 * live or on-demand ids with a rendition picker and live stats, upload a file with a
 * progress bar and play it when it is ready. Everything comes from this server; the SDK
 * is the page's /sdk/streams.js (import map).
 */

import {
  ApiError,
  PlaybackError,
  PublishError,
  Streams,
  type Asset,
  type LiveInput,
  type Publisher,
  type Viewer,
} from "@clutchcall/sdk/streams";

interface Login {
  orgId: string;
  apiKey: string;
}

interface Config {
  relay_url?: string;
  publish_url?: string | null;
}

type Child = Node | string | null | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (typeof v === "boolean") {
      if (v) el.setAttribute(k, "");
    } else el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const main = document.getElementById("main") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;
const LOGIN_KEY = "clutchcall.console.login";
const streamKeys = new Map<string, string>(); // li_ id -> stream key shown this session
let login: Login | null = null;
let config: Config = {};
let cleanup: Array<() => void> = [];

function describe(err: unknown): string {
  if (err instanceof ApiError) return `${err.title}: ${err.detail || err.status}`;
  if (err instanceof PlaybackError || err instanceof PublishError) return `${err.reason}${err.detail ? `: ${err.detail}` : ""}`;
  return err instanceof Error ? err.message : String(err);
}

function toast(message: string): void {
  const box = document.getElementById("toast") as HTMLElement;
  const item = h("div", {}, message);
  box.append(item);
  setTimeout(() => item.remove(), 8000);
}

function control(): Streams {
  if (!login) throw new Error("not signed in");
  return new Streams({ baseUrl: location.origin, apiKey: login.apiKey, orgId: login.orgId });
}

function dataPlane(token?: string): Streams {
  const opts: ConstructorParameters<typeof Streams>[0] = { apiBase: "" };
  if (config.relay_url) opts.relayUrl = config.relay_url;
  if (token) opts.token = token;
  return new Streams(opts);
}

function page(title: string, ...children: Child[]): void {
  main.replaceChildren(h("h1", {}, title), ...children.filter((c): c is Node | string => !!c));
  for (const a of document.querySelectorAll<HTMLAnchorElement>("#nav a")) {
    a.classList.toggle("active", location.hash.startsWith(a.getAttribute("href") ?? "-"));
  }
}

function renderWho(): void {
  who.replaceChildren(
    ...(login
      ? [
          h("span", {}, `org ${login.orgId}`),
          h("button", { class: "secondary", onclick: () => { sessionStorage.removeItem(LOGIN_KEY); login = null; renderWho(); location.hash = "#/signin"; } }, "Sign out"),
        ]
      : []),
  );
}

async function signIn(): Promise<void> {
  const demo = await fetch("demo.json", { cache: "no-store" })
    .then((r) => (r.ok ? (r.json() as Promise<{ org_id: string; api_key: string }>) : null))
    .catch(() => null);
  const org = h("input", { name: "org", placeholder: "org_…", required: true, value: demo?.org_id ?? "" });
  const key = h("input", { name: "key", type: "password", placeholder: "ck_…", required: true, size: "50", value: demo?.api_key ?? "" });
  const status = h("p", { class: "muted" }, demo ? "The demo org of this local stack is filled in." : "");
  const form = h(
    "form",
    { class: "row", id: "signin" },
    h("label", {}, "Org id", org),
    h("label", {}, "API key", key),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const candidate = { orgId: org.value.trim(), apiKey: key.value.trim() };
    status.textContent = "Checking…";
    try {
      await new Streams({ baseUrl: location.origin, ...candidate }).liveInputs.list({ limit: 1 });
      login = candidate;
      sessionStorage.setItem(LOGIN_KEY, JSON.stringify(candidate));
      renderWho();
      location.hash = "#/inputs";
    } catch (err) {
      status.className = "error";
      status.textContent = describe(err);
    }
  });
  page("Sign in", h("div", { class: "panel" }, form, status));
}

function badge(status: string): HTMLElement {
  return h("span", { class: `badge ${status}` }, status);
}

async function inputsPage(): Promise<void> {
  const tbody = h("tbody", {});
  const name = h("input", { name: "name", placeholder: "Live Demo", required: true });
  const ingest = h("select", { name: "ingest" }, h("option", { value: "fmp4" }, "fMP4 (browser, MoQT)"), h("option", { value: "rtmp" }, "RTMP (OBS, encoders)"));
  const created = h("div", {});
  const form = h("form", { class: "row", id: "create-input" }, h("label", {}, "Name", name), h("label", {}, "Ingest", ingest), h("button", { type: "submit" }, "Create live input"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const { input, streamKey } = await control().liveInputs.create({ name: name.value.trim(), ingest: ingest.value });
      streamKeys.set(input.id, streamKey);
      created.replaceChildren(
        h("p", {}, `Created ${input.name} (`, h("code", {}, input.external_input_id), "). Its stream key is shown once:"),
        h("div", { class: "secret mono", id: "stream-key" }, streamKey),
        h("p", { class: "muted" }, input.ingest === "rtmp" ? "RTMP: " : "Go live from the webcam on its page. RTMP also works: ", h("code", {}, input.rtmp_url)),
      );
      name.value = "";
      await load();
    } catch (err) {
      toast(describe(err));
    }
  });
  const load = async (): Promise<void> => {
    const { data } = await control().liveInputs.list({ limit: 100 });
    tbody.replaceChildren(
      ...data.map((li: LiveInput) =>
        h(
          "tr",
          { "data-id": li.id },
          h("td", {}, li.name),
          h("td", {}, h("code", {}, li.external_input_id)),
          h("td", {}, li.ingest),
          h("td", {}, badge(li.status)),
          h("td", {}, new Date(li.created_at).toLocaleString()),
          h("td", {}, h("a", { href: `#/live/${li.id}` }, "Go live"), " · ", h("a", { href: `#/watch/${li.id}` }, "Watch")),
        ),
      ),
    );
    if (!data.length) tbody.append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No live inputs yet.")));
  };
  page(
    "Live inputs",
    h("div", { class: "panel" }, form, created),
    h("div", { class: "panel" }, h("table", { id: "inputs" }, h("thead", {}, h("tr", {}, ...["Name", "Playback id", "Ingest", "Status", "Created", ""].map((t) => h("th", {}, t)))), tbody)),
  );
  await load();
  const timer = setInterval(() => void load().catch(() => undefined), 5000);
  cleanup.push(() => clearInterval(timer));
}

async function goLivePage(id: string): Promise<void> {
  const input = await control().liveInputs.get({ id });
  const preview = h("video", { muted: true, playsinline: true, autoplay: true, id: "preview" });
  const status = h("p", { class: "muted", id: "publish-status" }, "Camera off.");
  const keyInfo = h("p", { class: "muted" }, streamKeys.has(id) ? "Using the stream key from this session." : "No stream key in this session: going live rotates it (the old key stops working).");
  let cam: MediaStream | null = null;
  let pub: Publisher | null = null;
  const stopAll = (): void => {
    pub?.stop();
    pub = null;
    cam?.getTracks().forEach((t) => t.stop());
    cam = null;
  };
  cleanup.push(stopAll);
  const start = h("button", { id: "go-live", onclick: async () => {
    start.setAttribute("disabled", "");
    try {
      status.textContent = "Opening the camera…";
      cam = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      preview.srcObject = cam;
      let key = streamKeys.get(id);
      if (!key) {
        key = (await input.rotateStreamKey()).streamKey;
        streamKeys.set(id, key);
      }
      const relayUrl = config.relay_url ?? config.publish_url; // the POP carries publishers to the origin
      if (!relayUrl) throw new PublishError("network", "the control plane does not publish an origin URL");
      pub = new Streams({ relayUrl }).publisher({ timesliceMs: 500 });
      status.textContent = "Connecting…";
      await pub.publish(input.external_input_id, key, cam, input.namespace);
      status.className = "";
      status.textContent = "Live.";
    } catch (err) {
      stopAll();
      status.className = "error";
      status.textContent = describe(err);
      start.removeAttribute("disabled");
    }
  } }, "Go live from the webcam");
  const stop = h("button", { class: "secondary", onclick: () => { stopAll(); status.className = "muted"; status.textContent = "Stopped."; start.removeAttribute("disabled"); } }, "Stop");
  page(
    `Go live: ${input.name}`,
    h("div", { class: "panel" },
      h("p", {}, "Playback id ", h("code", {}, input.external_input_id), " · namespace ", h("code", {}, input.namespace), " · ", h("a", { href: `#/watch/${input.id}`, target: "_blank", rel: "opener" }, "watch in a new tab")),
      input.ingest === "rtmp" ? h("p", {}, "RTMP ingest: ", h("code", {}, input.rtmp_url)) : null,
      keyInfo,
      h("div", { class: "row" }, start, stop),
      status,
    ),
    h("div", { class: "panel" }, preview),
  );
}

/** #/watch/<li_…|as_…|lv_…|pb_…>: plays with the viewer; signed when signed in. */
async function watchPage(id: string): Promise<void> {
  let target = id;
  let title = id;
  if (login && id.startsWith("li_")) {
    const input = await control().liveInputs.get({ id });
    target = (await input.signedPlaybackUrl({ ttlSeconds: 3600 })).url;
    title = `${input.name} (${input.external_input_id})`;
  } else if (login && id.startsWith("as_")) {
    const asset = await control().assets.get({ id });
    target = asset.require_signed_urls ? (await asset.signedPlaybackUrl({ ttlSeconds: 3600 })).url : asset.playback_id;
    title = `${asset.name} (${asset.playback_id})`;
  }
  const video = h("video", { id: "watch-video", controls: true, muted: true, playsinline: true });
  const status = h("p", { class: "muted", id: "watch-status" }, "Starting…");
  const picker = h("select", { id: "rendition" }, h("option", { value: "auto" }, "auto"));
  const stats = h("div", { class: "stats", id: "stats" });
  const viewer: Viewer = dataPlane(new URLSearchParams(location.hash.split("?")[1] ?? "").get("token") ?? undefined).viewer({
    onStarted: () => {
      status.className = "";
      status.textContent = "Playing.";
    },
    onError: (e) => {
      status.className = "error";
      status.textContent = describe(e);
    },
    onEnded: () => {
      status.className = "muted";
      status.textContent = "Ended.";
    },
    // Live: a lost relay or a GOAWAY is reconnected; say so while it lasts (./streams/reconnect.ts).
    onReconnecting: (info) => {
      status.className = "reconnecting";
      status.dataset.state = "reconnecting";
      const why = info.cause === "goaway" ? "the relay is moving this viewer" : info.detail;
      status.textContent = `Reconnecting… (attempt ${info.attempt}: ${why})`;
    },
    onStateChange: (state) => {
      status.dataset.state = state;
      if (state === "reconnecting" && status.className !== "reconnecting") {
        status.className = "reconnecting";
        status.textContent = "Reconnecting…";
      } else if (state === "playing" && status.className === "reconnecting") {
        status.className = "";
        status.textContent = "Playing.";
      }
    },
  });
  picker.addEventListener("change", () => {
    try {
      viewer.setRendition(picker.value);
    } catch (err) {
      toast(describe(err));
    }
  });
  viewer.attach(video);
  cleanup.push(() => viewer.stop());
  let shown = "";
  const timer = setInterval(() => {
    const names = viewer.renditions();
    if (names.join() !== shown) {
      shown = names.join();
      const current = picker.value;
      picker.replaceChildren(h("option", { value: "auto" }, "auto"), ...names.map((r) => h("option", { value: r }, r)));
      picker.value = names.includes(current) ? current : "auto";
    }
    const s = viewer.stats();
    const keys = ["mode", "state", "reconnects", "rendition", "width", "height", "latency", "targetLatencyMs", "stalls", "bufferedAhead", "throughputKbps", "currentTime", "decodedFrames", "droppedFrames", "bytes", "segments", "objects", "startupMs"];
    stats.replaceChildren(
      ...keys.filter((k) => k in s).map((k) => {
        const v = s[k];
        const shown = typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(k === "latency" ? 3 : 2)) : String(v);
        return h("div", { "data-stat": k }, h("span", { class: "muted" }, k === "latency" ? "latency (s)" : k), h("span", {}, shown));
      }),
    );
  }, 500);
  cleanup.push(() => clearInterval(timer));
  page(
    `Watch ${title}`,
    h("div", { class: "player" }, h("div", {}, video, status), h("div", { class: "panel" }, h("label", {}, "Rendition", picker), h("h2", {}, "Stats"), stats)),
  );
  await viewer.play(target).catch(() => undefined); // onError shows it
}

async function uploadsPage(): Promise<void> {
  const file = h("input", { type: "file", id: "file", accept: "video/*,audio/*", required: true });
  const signed = h("input", { type: "checkbox", id: "signed" });
  const bar = h("progress", { id: "upload-progress", max: "100", value: "0" });
  const status = h("p", { class: "muted", id: "upload-status" }, "Choose a file.");
  const tbody = h("tbody", {});
  const form = h("form", { class: "row", id: "upload" }, file, h("label", {}, h("span", {}, signed, " require signed URLs")), h("button", { type: "submit" }, "Upload"));
  const load = async (): Promise<void> => {
    const { data } = await control().assets.list({ limit: 50 });
    tbody.replaceChildren(
      ...data.map((a: Asset) =>
        h("tr", { "data-id": a.id },
          h("td", {}, a.name),
          h("td", {}, h("code", {}, a.playback_id)),
          h("td", {}, badge(a.status), a.status === "processing" || a.status === "uploading" ? ` ${Math.round(a.progress ?? 0)}%` : ""),
          h("td", {}, a.duration ? `${a.duration.toFixed(1)} s` : ""),
          h("td", {}, a.renditions.map((r) => r.name).join(", ")),
          h("td", {}, a.status === "ready" ? h("a", { href: `#/watch/${a.id}` }, "Play") : a.error ? h("span", { class: "error" }, a.error.message) : ""),
        ),
      ),
    );
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = file.files?.[0];
    if (!f) return;
    try {
      const assets = control().assets;
      const { uploadUrl, assetId } = await assets.createUpload({ name: f.name, size: f.size, requireSignedUrls: signed.checked });
      status.textContent = "Uploading…";
      await assets.upload(uploadUrl, f, {
        chunkSize: 1 << 20,
        onProgress: ({ sent, total }) => {
          bar.value = total ? (100 * sent) / total : 0;
          status.textContent = `Uploading… ${Math.round(bar.value)}%`;
        },
      });
      status.textContent = "Processing…";
      const ready = await assets.waitReady({
        id: assetId,
        intervalMs: 500,
        onUpdate: (a) => {
          if (a.status === "processing") status.textContent = `Processing… ${Math.round(a.progress ?? 0)}%`;
        },
      });
      status.className = "";
      status.replaceChildren("Ready: ", h("a", { href: `#/watch/${ready.id}`, id: "play-upload" }, `play ${ready.name}`));
      await load();
    } catch (err) {
      status.className = "error";
      status.textContent = describe(err);
    }
  });
  page(
    "Uploads",
    h("div", { class: "panel" }, form, bar, status),
    h("div", { class: "panel" }, h("table", { id: "assets" }, h("thead", {}, h("tr", {}, ...["Name", "Playback id", "Status", "Duration", "Renditions", ""].map((t) => h("th", {}, t)))), tbody)),
  );
  await load();
  const timer = setInterval(() => void load().catch(() => undefined), 3000);
  cleanup.push(() => clearInterval(timer));
}

async function route(): Promise<void> {
  for (const fn of cleanup) fn();
  cleanup = [];
  const [path = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts[0] === "watch" && parts[1] && (login || /^(lv|pb)_/.test(parts[1]))) return await watchPage(parts[1]);
    if (!login || parts[0] === "signin") return await signIn();
    if (parts[0] === "live" && parts[1]) return await goLivePage(parts[1]);
    if (parts[0] === "uploads") return await uploadsPage();
    if (parts[0] !== "inputs") {
      location.hash = "#/inputs";
      return;
    }
    await inputsPage();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      sessionStorage.removeItem(LOGIN_KEY);
      login = null;
      renderWho();
      return signIn();
    }
    page("Error", h("p", { class: "error" }, describe(err)));
  }
}

async function boot(): Promise<void> {
  const saved = sessionStorage.getItem(LOGIN_KEY);
  if (saved) {
    try {
      login = JSON.parse(saved) as Login;
    } catch {
      login = null;
    }
  }
  config = await fetch("/sdk/config.json").then((r) => (r.ok ? (r.json() as Promise<Config>) : {})).catch(() => ({}));
  renderWho();
  window.addEventListener("hashchange", () => void route());
  await route();
  document.body.dataset["ready"] = "1";
}

void boot();
