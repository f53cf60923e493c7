// Compile every published JSON Schema with Ajv 2020 as a JavaScript partner would, and validate
// the examples with it.
//
// Usage: node deploy/node-tools/validate_json_schemas.mjs <generated dir>
// Ajv2020 runs with its default options, which are strict: an unknown keyword (such as
// OpenAPI's `discriminator`) is an error. ajv-formats is added, as Ajv's documentation tells
// every user to, for `format` (date-time, date); strict Ajv refuses a format it does not know.
// Exits 0 when every schema compiles and every example passes (and every broken copy fails),
// 1 otherwise, 2 when Ajv is not installed (run `make node-tools`).
// Ajv is resolved from .tools/node/node_modules by absolute path: ESM ignores NODE_PATH.
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const toolsDir = process.env.LIAISON_NODE_TOOLS || path.resolve(here, '..', '..', '.tools', 'node');
const dir = process.argv[2];
if (!dir) {
  console.error('usage: validate_json_schemas.mjs <generated dir>');
  process.exit(2);
}

let Ajv2020;
let addFormats;
try {
  const require = createRequire(path.join(toolsDir, 'package.json'));
  Ajv2020 = require('ajv/dist/2020').default;
  addFormats = require('ajv-formats').default;
} catch (err) {
  console.error(`ajv not found under ${toolsDir}: run \`make node-tools\` (${err.message})`);
  process.exit(2);
}

const readJson = async (file) => JSON.parse(await readFile(file, 'utf8'));
const failures = [];
const validators = new Map();
for (const file of (await readdir(path.join(dir, 'json'))).sort()) {
  const ajv = new Ajv2020();
  addFormats(ajv);
  const name = file.replace(/\.schema\.json$/, '');
  try {
    validators.set(name, ajv.compile(await readJson(path.join(dir, 'json', file))));
  } catch (err) {
    failures.push(`${file}: does not compile: ${err.message}`);
  }
}
console.log(`compiled ${validators.size} schemas`);

let checked = 0;
if (validators.size > 0 && failures.length === 0) {
  const envelope = validators.get('envelope');
  for (const file of (await readdir(path.join(dir, 'examples'))).sort()) {
    const example = await readJson(path.join(dir, 'examples', file));
    const type = example.body.type;
    const cases = [
      ['envelope', envelope, example, true],
      [type, validators.get(type), example.body, true],
      // Broken copies must be refused, so a schema that accepts anything cannot pass.
      ['envelope', envelope, { ...example, sender: 'Not An Id' }, false],
      ['envelope', envelope, { ...example, body: { ...example.body, type: 'no.such' } }, false],
      [type, validators.get(type), { ...example.body, type: 'no.such' }, false],
      ['envelope', envelope, { ...example, sent_at: '12 March' }, false],
    ];
    for (const [schema, validate, instance, valid] of cases) {
      checked += 1;
      if (validate === undefined) {
        failures.push(`${file}: no schema ${schema}`);
      } else if (validate(instance) !== valid) {
        const why = JSON.stringify(validate.errors?.slice(0, 3));
        failures.push(`${file}: ${schema} ${valid ? 'refuses the example' : 'accepts a broken copy'} ${why}`);
      }
    }
  }
}
console.log(`checked ${checked} instances`);
for (const failure of failures) console.error(failure);
process.exit(failures.length === 0 ? 0 : 1);
