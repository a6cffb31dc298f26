// tus-js-client (an independent tus 1.0.0 client) uploading a file to an upload URL.
// Usage: node tus_js_upload.mjs <endpoint> <file> <chunk bytes> [uploadUrl to resume]
// With endpoint = the API's uploadUrl, the client's creation POST binds the length;
// after a cut connection the client resumes by itself (HEAD, then PATCH at the offset).
import { readFileSync } from "node:fs";
import { Upload } from "tus-js-client";

const [endpoint, file, chunkArg, resumeUrl] = process.argv.slice(2);
const data = readFileSync(file);
let errors = 0;
await new Promise((resolve, reject) => {
  const upload = new Upload(data, {
    endpoint,
    uploadUrl: resumeUrl || null,
    chunkSize: Number(chunkArg),
    retryDelays: [0, 100, 300, 1000],
    metadata: { filename: "clip.mp4" },
    onShouldRetry: () => {
      errors += 1;
      return true;
    },
    onError: reject,
    onSuccess: () => resolve(upload.url),
  });
  upload.start();
});
console.log(JSON.stringify({ errors }));
