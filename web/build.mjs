// Build of @clutchcall/sdk (run by `make install` / `npm run build`):
//   dist/streams.js (+ .map)   one ESM bundle of src/streams/index.ts, served at /sdk/streams.js
//   dist/lib/**.js             every source module transpiled alone (node --test imports these)
//   dist/types/**.d.ts         declarations (tsc, strict: the type check of the package)
//   dist/console/app.js        the web console's script (console/app.ts, bundled)
import { execFileSync } from "node:child_process";
import { readdirSync, renameSync, rmSync, mkdirSync, writeFileSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const final = join(root, "dist");
// Built beside dist/ and swapped in at the end, so a reader (a test, the server) never
// sees a half-built or empty dist/ while another build runs.
const dist = join(root, `.dist-build-${process.pid}`);

function sources(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

process.on("exit", () => rmSync(dist, { recursive: true, force: true }));
mkdirSync(dist, { recursive: true });

// Type check + declarations first: a type error fails the build.
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json"), "--outDir", join(dist, "types")], {
  stdio: "inherit",
});
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "console/tsconfig.json")], {
  stdio: "inherit",
});

const common = { target: "es2022", format: "esm", logLevel: "warning", legalComments: "none" };
await esbuild.build({
  ...common,
  entryPoints: [join(root, "src/streams/index.ts")],
  bundle: true,
  sourcemap: true,
  outfile: join(dist, "streams.js"),
});
await esbuild.build({
  ...common,
  entryPoints: sources(join(root, "src")),
  bundle: false,
  outbase: join(root, "src"),
  outdir: join(dist, "lib"),
});
await esbuild.build({
  ...common,
  entryPoints: [join(root, "console/app.ts")],
  bundle: true,
  // The page's import map resolves it to /sdk/streams.js: one SDK instance per page.
  external: ["@clutchcall/sdk/streams"],
  sourcemap: true,
  outfile: join(dist, "console/app.js"),
});
writeFileSync(join(dist, "streams.d.ts"), 'export * from "./types/streams/index.js";\n');
const old = join(root, `.dist-old-${process.pid}`);
try {
  renameSync(final, old);
} catch {
  /* first build */
}
renameSync(dist, final);
rmSync(old, { recursive: true, force: true });
console.log("built", final);
