// Builds a JavaScript handler into a component of ocni's handler world:
//   node build.mjs handlers/compute.js out/compute.wasm
// The component imports only ocni's interfaces: the runtime's own WASI features (stdio, random,
// clocks, http) are left out, since handlers are given none of them.
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [source, output] = process.argv.slice(2);
if (!source || !output) {
  console.error('usage: node build.mjs HANDLER.js OUT.wasm');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const sourcePath = resolve(source);
const outputPath = resolve(output);
// The engine resolves a handler's relative imports (`../ocni.js`) against the working folder:
// the repository's root, so that handlers anywhere in it (guests/js/handlers, examples/handler)
// reach the SDK.
process.chdir(resolve(here, '../..'));
const { component } = await componentize({
  sourcePath,
  witPath: resolve(here, '../../wit'),
  worldName: 'handler-world',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await mkdir(dirname(outputPath), { recursive: true });
await writeFile(outputPath, component);
console.log(`${outputPath}: ${component.length} bytes`);
