// A Liaison partner in Node.js with amqplib: one organisation publishes an EO spot report,
// another reads it from its inbox. Run: npm install amqplib && node partner.mjs
//
// Environment:
//   LIAISON_AMQP_URL     broker and vhost, no credentials, e.g. amqps://broker.example.org/liaison
//   SENDER_ORG, SENDER_ACCOUNT, SENDER_PASSWORD           who sends (e.g. mag)
//   RECIPIENT_ORG, RECIPIENT_ACCOUNT, RECIPIENT_PASSWORD  who receives (e.g. unmas)
import { randomUUID } from "node:crypto";
import amqp from "amqplib";

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
  channel.publish("liaison.ingress", org, Buffer.from(JSON.stringify(envelope)), {
    userId: account,
    contentType: "application/json",
    deliveryMode: 2,
    messageId: distributionId,
  });
  await channel.waitForConfirms();
  await connection.close();
  console.log(`sent ${distributionId}`);
  return distributionId;
}

async function receive(org, account, password, distributionId) {
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
        resolve({ envelope, messageId: message.properties.messageId });
      }
    };
    // Flash messages have their own queue, so they never wait behind routine ones.
    channel.consume(`inbox.${org}.flash`, onMessage, { noAck: false });
    channel.consume(`inbox.${org}`, onMessage, { noAck: false });
  });
  try {
    const { envelope, messageId } = await got;
    console.log(`${org} received ${messageId}: ${envelope.body.type} from ${envelope.sender}`);
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
