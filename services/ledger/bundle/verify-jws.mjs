// The two JOSE checks of a Liaison evidence bundle, with panva/jose (npm install jose).
// Usage: node verify-jws.mjs [BUNDLE_DIR]
// 1. body.jws is the sender's signature of exactly body.bin (JWS with a detached, unencoded
//    payload: RFC 7515 Appendix F, RFC 7797), by the key in sender-key.json, and that key was
//    valid when the hub decided each record.
// 2. each chain/<day>/head.jws is a head signed by the ledger key in ledger-key.json.
// Prints one line per chain, "<day> <seq> <head hash>", for check.sh to compare with sha256sum.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { compactVerify, decodeProtectedHeader, flattenedVerify, importJWK } from 'jose';

const dir = process.argv[2] ?? '.';
const read = (name) => readFileSync(join(dir, name));
const json = (name) => JSON.parse(read(name).toString('utf8'));
const manifest = json('manifest.json');

if (existsSync(join(dir, 'body.jws'))) {
  const sender = json('sender-key.json');
  const jws = read('body.jws').toString('utf8').trim();
  const [protectedB64, detached, signature] = jws.split('.');
  if (detached !== '') throw new Error('body.jws does not have a detached payload');
  const header = decodeProtectedHeader(jws);
  if (header.kid !== sender.kid) throw new Error(`body.jws names key ${header.kid}, not ${sender.kid}`);
  const key = await importJWK(sender.jwk, header.alg);
  // jose applies RFC 7797 itself: with "b64": false in the (critical) header, the payload
  // given here is used as raw bytes in the signing input.
  await flattenedVerify({ protected: protectedB64, payload: read('body.bin'), signature }, key);
  for (const record of manifest.records) {
    const decided = new Date(json(record.file).decided_at);
    if ((sender.not_before && decided < new Date(sender.not_before)) ||
        (sender.not_after && decided > new Date(sender.not_after))) {
      throw new Error(`${record.file}: key ${sender.kid} was not valid at ${decided.toISOString()}`);
    }
  }
  console.error(`body.bin: signed by ${sender.org} with ${sender.kid} (${header.alg}), valid`);
} else {
  console.error('body.bin: the sender did not sign this message; only the ledger records vouch for it');
}

const ledgerKeys = json('ledger-key.json').keys;
for (const chain of manifest.chains) {
  const jws = read(chain.head).toString('utf8').trim();
  const { kid, alg } = decodeProtectedHeader(jws);
  const jwk = ledgerKeys.find((k) => k.kid === kid);
  if (!jwk) throw new Error(`${chain.head} is signed by ${kid}, not a key in ledger-key.json`);
  const { payload } = await compactVerify(jws, await importJWK(jwk, alg));
  const head = JSON.parse(new TextDecoder().decode(payload));
  if (head.day !== chain.chain) throw new Error(`${chain.head} is the head of ${head.day}`);
  console.log(`${head.day} ${head.seq} ${head.head}`);
}
