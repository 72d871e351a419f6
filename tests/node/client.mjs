// A Node.js client of msgbridge, as a Node.js developer writes one: @grpc/grpc-js with
// @grpc/proto-loader loading protos/ as shipped (msgbridge/v1 and the google/rpc copies beside
// it, README "Clients"), and protobufjs to decode the google.rpc.Status of a failed call.
//
//   node tests/node/client.mjs GRPC_PORT HTTP_PORT
//
// Against `msgbridge serve --demo` on 127.0.0.1: lists the integrations, enables the demo one,
// sends, posts an inbound message to the webhook sidecar and reads its event from StreamEvents,
// then makes three calls fail and decodes their details. Prints one JSON object (what each step
// returned) on stdout for tests/node/test_node_client.py to judge; exits 1 on anything unexpected.

import path from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const PROTOS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../protos");
const [grpcPort, httpPort] = process.argv.slice(2).map(Number);
if (!grpcPort || !httpPort) {
  console.error("usage: node client.mjs GRPC_PORT HTTP_PORT");
  process.exit(2);
}

// keepCase: fields as the .proto names them (org_id, and `from`, a plain key in JavaScript).
const LOAD = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const definition = protoLoader.loadSync("msgbridge/v1/gateway.proto", {
  ...LOAD,
  includeDirs: [PROTOS],
});
const { Gateway } = grpc.loadPackageDefinition(definition).msgbridge.v1;
const gateway = new Gateway(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());

// google.rpc.Status and its details, from the copies shipped in protos/google/rpc.
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (_origin, target) => path.join(PROTOS, target);
rpcTypes.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], {
  keepCase: true,
});
const Status = rpcTypes.lookupType("google.rpc.Status");

function unary(method, request) {
  return new Promise((resolve, reject) => {
    gateway[method](request, { deadline: Date.now() + 30_000 }, (error, reply) =>
      error ? reject(error) : resolve(reply),
    );
  });
}

// A failed call as a client reads it: its code, and the google.rpc.Status in the
// grpc-status-details-bin trailer with every detail unpacked by its type URL.
function describeError(error) {
  const [raw] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (raw === undefined) return { code: grpc.status[error.code], details: null };
  const status = Status.decode(raw);
  const details = status.details.map((any) => {
    const name = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
    const type = rpcTypes.lookupType(name);
    return { type: name, ...type.toObject(type.decode(any.value), { longs: String }) };
  });
  return { code: grpc.status[error.code], status_code: status.code, message: status.message, details };
}

async function failure(method, request) {
  try {
    await unary(method, request);
  } catch (error) {
    if (error.code === undefined) throw error;
    return describeError(error);
  }
  throw new Error(`${method} succeeded where it should have failed`);
}

// The first event of `wanted` type from StreamEvents (from the earliest kept event), after
// `trigger` has run; the stream is cancelled then.
function firstEvent(request, wanted, trigger) {
  return new Promise((resolve, reject) => {
    const call = gateway.StreamEvents(request);
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error(`no ${wanted} event within 30 s`));
    }, 30_000);
    call.on("data", (response) => {
      const event = response.events.find((e) => e.type === wanted);
      if (event === undefined) return;
      clearTimeout(timer);
      call.cancel();
      resolve(event);
    });
    call.on("error", (error) => {
      if (error.code !== grpc.status.CANCELLED) {
        clearTimeout(timer);
        reject(error);
      }
    });
    trigger().catch((error) => {
      clearTimeout(timer);
      call.cancel();
      reject(error);
    });
  });
}

async function main() {
  const out = {};
  const listed = await unary("ListIntegrations", {});
  out.integrations = listed.integrations.map((i) => ({ id: i.id, version: i.version }));

  const installation = await unary("EnableIntegration", {
    org_id: "acme",
    integration_id: "demo",
    properties: { "API key": "node-secret" },
    numbers: [{ number: "+15550001111", users: ["101", "102"] }],
  });
  out.installation = {
    id: installation.id,
    org_id: installation.org_id,
    integration_id: installation.integration_id,
    enabled: installation.enabled,
    numbers: installation.numbers.map((n) => n.normalized),
    properties: installation.properties.map((p) => ({ name: p.name, value: p.value, set: p.set })),
    webhook_url: installation.webhook_url,
  };

  const reply = await unary("SendMessage", {
    org_id: "acme",
    from: "+15550001111",
    to: "+15557654321",
    text: "Hello from Node.js 👋",
    metadata: { client: "node" },
  });
  out.send = {
    message_id: reply.message_id,
    provider_message_id: reply.provider_message_id,
    provider_status: reply.provider_status,
    state: reply.state,
    installation_id: reply.installation_id,
    encoding: reply.encoding,
    segments: reply.segments,
  };

  // The provider's inbound message, posted to the sidecar at the installation's webhook path
  // (its URL names port 0, the --http-listen asked for; the sidecar listens on HTTP_PORT).
  const webhook = new URL(installation.webhook_url);
  const inbound = async () => {
    const answer = await fetch(`http://127.0.0.1:${httpPort}${webhook.pathname}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        method: "message",
        params: { from: "+15557654321", to: "+15550001111", content: "Hi back from Node.js" },
      }),
    });
    out.webhook_status = answer.status;
  };
  const event = await firstEvent(
    { org_id: "acme", types: ["MESSAGE"], earliest: true },
    "MESSAGE",
    inbound,
  );
  out.event = {
    type: event.type,
    cursor: event.cursor,
    from: event.from,
    to: event.to,
    text: event.text,
    users: event.users,
    installation_id: event.installation_id,
  };

  out.errors = {
    // `from` is no number of acme's installations: PERMISSION_DENIED with an ErrorInfo.
    not_our_number: await failure("SendMessage", {
      org_id: "acme",
      from: "+15559999999",
      to: "+15557654321",
      text: "x",
    }),
    // A definition with problems: INVALID_ARGUMENT with a BadRequest field violation each.
    bad_definition: await failure("RegisterIntegration", {
      definition_json: JSON.stringify({ id: "broken", name: "Broken" }),
    }),
  };

  // One message may wait: a second scheduled one is RESOURCE_EXHAUSTED with a RetryInfo (a
  // google.protobuf.Duration inside a google.rpc detail).
  await unary("UpdateInstallation", {
    installation_id: installation.id,
    send_limits: { max_queued: 1 },
  });
  const later = { seconds: String(Math.floor(Date.now() / 1000) + 3600), nanos: 0 };
  const scheduled = {
    org_id: "acme",
    from: "+15550001111",
    to: "+15557654321",
    text: "later",
    options: { send_at: later },
  };
  out.scheduled = (await unary("SendMessage", scheduled)).state;
  out.errors.queue_full = await failure("SendMessage", { ...scheduled, text: "later again" });
  return out;
}

try {
  console.log(JSON.stringify(await main()));
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  gateway.close();
}
