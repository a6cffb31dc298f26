// The seed's recipe 3 step 2 (/work/shared/seed/000_b05b653bb5fd3d15.txt), copied as
// printed; only the TypeScript type annotations are stripped so node runs it.
// Usage: node seed_upload.mjs <uploadUrl> <file> [chunk bytes]
// A failed request (a cut connection) is resumed the way the recipe's comment says:
// call tusUpload again, which HEADs uploadUrl for Upload-Offset and continues there.
import { readFileSync } from "node:fs";

    async function tusUpload(uploadUrl, bytes, chunk = 8 << 20) {
      // On reconnect, HEAD uploadUrl to read Upload-Offset and resume there.
      let offset = Number(
        (await fetch(uploadUrl, { method: "HEAD", headers: { "tus-resumable": "2.0.0" } }))
          .headers.get("upload-offset") ?? 0,
      );
      while (offset < bytes.byteLength) {
        const end = Math.min(offset + chunk, bytes.byteLength);
        const res = await fetch(uploadUrl, {
          method: "PATCH",
          headers: {
            "tus-resumable": "2.0.0",
            "upload-offset": String(offset),
            "content-type": "application/offset+octet-stream",
          },
          body: bytes.slice(offset, end),
        });
        offset = Number(res.headers.get("upload-offset") ?? end);
      }
    }

const [uploadUrl, file, chunkArg] = process.argv.slice(2);
const bytes = new Uint8Array(readFileSync(file));
let attempts = 0;
for (;;) {
  attempts += 1;
  try {
    if (chunkArg) await tusUpload(uploadUrl, bytes, Number(chunkArg));
    else await tusUpload(uploadUrl, bytes);
    break;
  } catch (err) {
    if (attempts >= 5) throw err;
    console.error(`attempt ${attempts} failed (${err.cause?.code ?? err.message}); resuming`);
  }
}
console.log(JSON.stringify({ attempts }));
