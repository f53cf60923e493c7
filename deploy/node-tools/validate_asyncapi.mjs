// Validate an AsyncAPI document with the reference parser (@asyncapi/parser).
//
// Usage: node deploy/node-tools/validate_asyncapi.mjs <asyncapi.json>
// Exits 0 when the document parses with no error-severity diagnostics, 1 when it does not,
// 2 when the parser is not installed (run `make node-tools`).
//
// The parser is resolved from .tools/node/node_modules (where `make node-tools` puts it), by
// absolute path: ESM ignores NODE_PATH.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const toolsDir = process.env.LIAISON_NODE_TOOLS || path.resolve(here, '..', '..', '.tools', 'node');
const file = process.argv[2];
if (!file) {
  console.error('usage: validate_asyncapi.mjs <asyncapi.json>');
  process.exit(2);
}

let Parser;
try {
  const require = createRequire(path.join(toolsDir, 'package.json'));
  ({ Parser } = require('@asyncapi/parser'));
} catch (err) {
  console.error(`@asyncapi/parser not found under ${toolsDir}: run \`make node-tools\` (${err.message})`);
  process.exit(2);
}

const text = await readFile(file, 'utf8');
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const where = (d.path || []).join('.');
  console.log(`${['error', 'warning', 'info', 'hint'][d.severity] ?? d.severity} ${d.code} at ${where}: ${d.message}`);
}
if (errors.length > 0 || !document) {
  console.error(`${file}: ${errors.length} error(s): not a valid AsyncAPI document`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}`);
