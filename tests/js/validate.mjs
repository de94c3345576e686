// Validate glTF content with the Khronos glTF validator.
// Usage: node validate.mjs FILE...   (.glb, .gltf or .b3dm; the glb inside a b3dm is validated)
// Prints one JSON object per line: {file, numErrors, numWarnings, numInfos, messages: [...errors and warnings]}.
import { readFileSync } from "node:fs";
import validator from "gltf-validator";

function glbOf(path) {
  const data = readFileSync(path);
  if (!path.endsWith(".b3dm")) return new Uint8Array(data);
  const magic = data.toString("latin1", 0, 4);
  if (magic !== "b3dm") throw new Error(`${path}: not a b3dm (magic ${JSON.stringify(magic)})`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const total = view.getUint32(8, true);
  if (total !== data.byteLength) throw new Error(`${path}: byteLength ${total} != file size ${data.byteLength}`);
  let offset = 28;
  for (let i = 0; i < 4; i++) offset += view.getUint32(12 + 4 * i, true);
  return new Uint8Array(data.buffer, data.byteOffset + offset, data.byteLength - offset);
}

for (const file of process.argv.slice(2)) {
  let out;
  try {
    const report = await validator.validateBytes(glbOf(file), { uri: file, maxIssues: 200 });
    const issues = report.issues;
    out = {
      file,
      numErrors: issues.numErrors,
      numWarnings: issues.numWarnings,
      numInfos: issues.numInfos,
      messages: issues.messages.filter((m) => m.severity <= 1),
    };
  } catch (err) {
    out = { file, numErrors: 1, numWarnings: 0, numInfos: 0, messages: [{ code: "EXCEPTION", message: String(err) }] };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
