// A Liaison partner in Node.js with amqplib and jose: one organisation signs and publishes an
// EO spot report, another reads it from its inbox and verifies who signed it.
// Run: npm install amqplib jose && node partner.mjs
//
// Environment:
//   LIAISON_AMQP_URL     broker and vhost, no credentials, e.g. amqps://broker.example.org/liaison
//   SENDER_ORG, SENDER_ACCOUNT, SENDER_PASSWORD           who sends (e.g. mag)
//   SENDER_SIGNING_KEY, SENDER_SIGNING_KID                its Ed25519 private key (PKCS#8 PEM
//                                                         file) and that key's id
//   RECIPIENT_ORG, RECIPIENT_ACCOUNT, RECIPIENT_PASSWORD  who receives (e.g. unmas)
//   LIAISON_TRUSTED_KEYS  signing-keys.json from the partner bundle (everyone's public keys)
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import amqp from "amqplib";
import { FlattenedSign, flattenedVerify, importJWK, importPKCS8 } from "jose";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

// The URL with an account's credentials put in (URL-encoded).
function login(account, password) {
  const url = new URL(env("LIAISON_AMQP_URL"));
  url.username = encodeURIComponent(account);
  url.password = encodeURIComponent(password);
  return url.toString();
}

// The x-liaison-signature header: a JWS with a detached, unencoded payload (RFC 7515
// Appendix F, RFC 7797) over the exact bytes published: "<protected>..<signature>".
async function sign(body, privateKey, kid) {
  const jws = await new FlattenedSign(body)
    .setProtectedHeader({ alg: "Ed25519", kid, b64: false, crit: ["b64"] })
    .sign(privateKey);
  return `${jws.protected}..${jws.signature}`;
}

// Who signed a delivered message: the sender's registered key, valid when it was delivered,
// over these exact bytes; throws otherwise.
async function verify(body, header, sender, trusted, deliveredAt) {
  if (typeof header !== "string") throw new Error("the message is not signed");
  const [protectedHeader, empty, signature] = header.split(".");
  if (empty !== "" || !signature) throw new Error("not a detached JWS");
  const { kid } = JSON.parse(Buffer.from(protectedHeader, "base64url").toString("utf8"));
  const jwk = trusted.keys.find((key) => key.kid === kid);
  if (!jwk || jwk.org !== sender) throw new Error(`${kid} is not a key of ${sender}`);
  if (deliveredAt < new Date(jwk.not_before) || deliveredAt >= new Date(jwk.not_after)) {
    throw new Error(`${kid} was not valid at ${deliveredAt.toISOString()}`);
  }
  const key = await importJWK({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, "Ed25519");
  await flattenedVerify({ protected: protectedHeader, payload: body, signature }, key, {
    algorithms: ["Ed25519", "EdDSA"],
  });
  return { org: jwk.org, kid };
}

async function send(org, account, password, recipient) {
  const connection = await amqp.connect(login(account, password));
  const channel = await connection.createConfirmChannel();
  const distributionId = `${org}-${randomUUID()}`;
  const envelope = {
    schema_version: "1.0",
    distribution_id: distributionId,
    sender: org,
    sent_at: new Date().toISOString(),
    recipients: [`org:${recipient}`],
    precedence: "immediate",
    body: {
      type: "hazard.eo_spot_report",
      location: { type: "Point", coordinates: [15.6012, 5.9347] },
      location_desc: "RN3 km 4 west of Bouar, 15 m north of the road shoulder",
      device_category: "landmine",
      device_type: "TM-57 anti-vehicle mine",
      quantity: 1,
      condition: "intact",
      marked: true,
      action_taken: "cordoned",
      found_at: new Date(Date.now() - 30 * 60 * 1000).toISOString(),
      reported_by: "EOD team 3, team leader",
    },
  };
  // The four properties the hub checks: routing key = your org id, user_id = your broker
  // account, content type JSON, persistent. Then wait for the broker's confirm.
  // Sign the exact bytes you publish, and publish those bytes.
  const body = Buffer.from(JSON.stringify(envelope));
  const privateKey = await importPKCS8(readFileSync(env("SENDER_SIGNING_KEY"), "utf8"), "Ed25519");
  const signature = await sign(body, privateKey, env("SENDER_SIGNING_KID"));
  channel.publish("liaison.ingress", org, body, {
    userId: account,
    contentType: "application/json",
    deliveryMode: 2,
    messageId: distributionId,
    headers: { "x-liaison-signature": signature },
  });
  await channel.waitForConfirms();
  await connection.close();
  console.log(`sent ${distributionId}`);
  return distributionId;
}

async function receive(org, account, password, distributionId) {
  const trusted = JSON.parse(readFileSync(env("LIAISON_TRUSTED_KEYS"), "utf8"));
  const connection = await amqp.connect(login(account, password));
  const channel = await connection.createChannel();
  await channel.prefetch(16);
  const got = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("nothing arrived in 20 s")), 20_000);
    const onMessage = (message) => {
      const envelope = JSON.parse(message.content.toString("utf8"));
      // message.properties.messageId is "<sender>/<distribution_id>": the same on a
      // redelivery, so a receiver can drop duplicates by it.
      channel.ack(message);
      if (envelope.distribution_id === distributionId) {
        clearTimeout(timer);
        // The hub forwards the sender's signature unchanged: verify it end to end.
        const header = message.properties.headers?.["x-liaison-signature"];
        const deliveredAt = new Date(message.properties.timestamp * 1000);
        verify(message.content, header?.toString(), envelope.sender, trusted, deliveredAt)
          .then((signer) => resolve({ envelope, messageId: message.properties.messageId, signer }))
          .catch(reject);
      }
    };
    // Flash messages have their own queue, so they never wait behind routine ones.
    channel.consume(`inbox.${org}.flash`, onMessage, { noAck: false });
    channel.consume(`inbox.${org}`, onMessage, { noAck: false });
  });
  try {
    const { envelope, messageId, signer } = await got;
    console.log(`${org} received ${messageId}: ${envelope.body.type} from ${envelope.sender}`);
    console.log(`verified: signed by ${signer.org} with key ${signer.kid}`);
    console.log(JSON.stringify(envelope, null, 2));
  } finally {
    await connection.close();
  }
}

const id = await send(
  env("SENDER_ORG"),
  env("SENDER_ACCOUNT"),
  env("SENDER_PASSWORD"),
  env("RECIPIENT_ORG"),
);
await receive(env("RECIPIENT_ORG"), env("RECIPIENT_ACCOUNT"), env("RECIPIENT_PASSWORD"), id);
