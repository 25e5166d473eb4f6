#!/usr/bin/env node
// Drives a running aonode's AO-Core surface (--hb-port) with the unmodified
// @permaweb/aoconnect@0.0.98 in MODE 'mainnet' (its ESM build), as aos 2.x and
// today's apps do: request() for the node info, spawn (Scheduler and Authority
// from /~meta@1.0/info/address, and once with the public mainnet scheduler as
// aos sends it), message + result by slot and by message id, results,
// getLastSlot, getMessageById and getMessages (legacy SU reads), dryrun, ping-pong between two processes spawned this way (the pushed Ping
// must be trusted), and state exposed with patch@1.0. Each step prints one
// JSON line {"step","ok",...}; the first failed step prints
// {"step","ok":false,"error"} and the script exits 1.
//
// usage: HB_URL=… GATEWAY_URL=… GRAPHQL_URL=… [MODULE_FORMAT=…] node mainnet.mjs WALLET.json MODULE.wasm
import fs from "node:fs";
import crypto from "node:crypto";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { createData, ArweaveSigner } = require("arbundles");

const [walletPath, modulePath] = process.argv.slice(2);
if (!walletPath || !modulePath || !process.env.HB_URL || !process.env.GATEWAY_URL) {
  console.error("usage: HB_URL=… GATEWAY_URL=… node mainnet.mjs WALLET.json MODULE.wasm");
  process.exit(2);
}
const HB = process.env.HB_URL;
const jwk = JSON.parse(fs.readFileSync(walletPath, "utf8"));
const myAddress = crypto.createHash("sha256").update(Buffer.from(jwk.n, "base64url")).digest("base64url");
// aos 2.0.16's SCHEDULER_MAINNET (src/config.js), which it sends unless given --scheduler.
const MAINNET_SCHEDULER = "n_XZJhUnmldNFo4dhajoPZWhBXuJk-OcQr5JQ49c4Zo";

// ao-scheduler-utils' locate (behind getLastSlot, getMessageById, getMessages)
// first asks the public testnet SU router, which does not know local processes
// and answers 4xx; tests run offline, so that answer is given here. Every other
// request goes out unchanged.
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) =>
  String(input?.url ?? input).startsWith("https://su-router.ao-testnet.xyz")
    ? Promise.resolve(new Response("process not found", { status: 404 }))
    : realFetch(input, init);
// Imported after the shim: ao-scheduler-utils captures fetch when it loads.
const { connect, createSigner } = await import("@permaweb/aoconnect");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let current = "setup";
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function out(step, extra) {
  console.log(JSON.stringify({ step, ok: true, ...extra }));
}
const outputData = (r) => (r && r.Output && typeof r.Output === "object" ? r.Output.data : r && r.Output);

async function publishModule() {
  const tags = [
    { name: "Data-Protocol", value: "ao" },
    { name: "Variant", value: "ao.TN.1" },
    { name: "Type", value: "Module" },
    { name: "Module-Format", value: process.env.MODULE_FORMAT || "wasm32-unknown-emscripten4" },
    { name: "Input-Encoding", value: "JSON-V1" },
    { name: "Output-Encoding", value: "JSON-V1" },
    { name: "Memory-Limit", value: "1-gb" },
    { name: "Compute-Limit", value: "9000000000000" },
    { name: "Content-Type", value: "application/wasm" },
  ];
  const s = new ArweaveSigner(jwk);
  const item = createData(fs.readFileSync(modulePath), s, { tags });
  await item.sign(s);
  const res = await fetch(`${process.env.GATEWAY_URL}/tx/arweave`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream", Accept: "application/json" },
    body: item.getRaw(),
  });
  if (!res.ok) throw new Error(`module upload: ${res.status} ${await res.text()}`);
  return item.id;
}

async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function main() {
  const signer = createSigner(jwk);
  // No SCHEDULER: spawn asks the node (/~meta@1.0/info/address), as aoconnect's default.
  const ao = connect({ MODE: "mainnet", URL: HB, signer });

  current = "info";
  const infoRes = await ao.request({ path: "/~meta@1.0/info", method: "GET" });
  if (!infoRes.ok) throw new Error(`GET /~meta@1.0/info: ${infoRes.status} ${await infoRes.text()}`);
  const info = await infoRes.json();
  const address = await (await fetch(`${HB}/~meta@1.0/info/address`)).text();
  assert(info.address === address && address.length === 43, `info ${JSON.stringify(info)} vs address ${address}`);
  out("info", { address, operator: info.operator });

  current = "publish";
  const module = await publishModule();
  out("publish", { module });

  current = "spawn";
  const pid = await ao.spawn({ module, tags: [{ name: "Name", value: "alpha" }] });
  assert(typeof pid === "string" && pid.length === 43, `spawn returned ${pid}`);
  out("spawn", { process: pid });

  const evalLua = async (process, code) => {
    const slot = await ao.message({ process, tags: [{ name: "Action", value: "Eval" }], data: code });
    const r = await ao.result({ process, slot });
    assert(!r.Error, `Eval ${JSON.stringify(code)}: ${JSON.stringify(r.Error)}`);
    return { slot, r };
  };

  current = "message";
  const { slot, r } = await evalLua(pid, "return 1+1");
  assert(typeof slot === "number" && slot >= 1, `message returned slot ${slot}`);
  assert(String(outputData(r)) === "2", `Eval return 1+1 gave ${JSON.stringify(r.Output)}`);
  out("message", { slot, output: outputData(r) });

  current = "result-by-id";
  const idSlot = await ao.message({ process: pid, tags: [{ name: "Action", value: "Eval" }], data: "return 6*7", returnMessageId: true, returnAssignmentSlot: true });
  assert(idSlot.id && idSlot.id.length === 43 && idSlot.slot === slot + 1, `returnMessageId gave ${JSON.stringify(idSlot)}`);
  const byId = await ao.result({ process: pid, message: idSlot.id });
  assert(String(outputData(byId)) === "42", `result by id gave ${JSON.stringify(byId.Output)}`);
  const full = await ao.message({ process: pid, tags: [{ name: "Action", value: "Eval" }], data: "return 'full'", opts: { fullResponse: true } });
  assert(outputData(full) === "full", `fullResponse gave ${JSON.stringify(full.Output)}`);
  out("result-by-id", { id: idSlot.id, slot: idSlot.slot });

  current = "results";
  const rs = await ao.results({ process: pid });
  assert(rs.edges.length === 1 && Number(rs.edges[0].cursor) === slot + 2, `results ${JSON.stringify(rs.edges.map((e) => e.cursor))}`);
  assert(outputData(rs.edges[0].node) === "full", `results node ${JSON.stringify(rs.edges[0].node.Output)}`);
  out("results", { cursor: rs.edges[0].cursor });

  current = "legacy-reads";
  // These still locate the process's SU through GraphQL (GRAPHQL_URL) and read
  // it with the legacy SU API: the node address needs a Scheduler-Location.
  const last = await ao.getLastSlot({ processId: pid });
  assert(Number(last) === slot + 2, `getLastSlot ${last}, want ${slot + 2}`);
  const byIdSU = await ao.getMessageById({ processId: pid, messageId: idSlot.id });
  assert(byIdSU && byIdSU.message && byIdSU.message.id === idSlot.id, `getMessageById ${JSON.stringify(byIdSU).slice(0, 200)}`);
  const page = await ao.getMessages({ processId: pid, from: "0", to: String(Date.now() + 60000), limit: "100" });
  const lastEdge = page && page.edges && page.edges[page.edges.length - 1];
  const lastNonce = lastEdge && lastEdge.node.assignment.tags.find((t) => t.name === "Nonce").value;
  assert(lastEdge && Number(lastNonce) === slot + 2, `getMessages ends at slot ${lastNonce}: ${JSON.stringify(page).slice(0, 300)}`);
  out("legacy-reads", { last });

  current = "dryrun";
  await evalLua(pid, "Counter = 41");
  const dr = await ao.dryrun({ process: pid, tags: [{ name: "Action", value: "Eval" }], data: "Counter = Counter + 1; return Counter" });
  assert(String(outputData(dr)) === "42", `dryrun gave ${JSON.stringify(dr.Output)}`);
  const after = await evalLua(pid, "return Counter");
  assert(String(outputData(after.r)) === "41", `dryrun changed state: Counter = ${outputData(after.r)}`);
  const info2 = await ao.dryrun({ process: pid, tags: [{ name: "Action", value: "Info" }] });
  assert(info2 && !info2.Error, `dryrun Action=Info: ${JSON.stringify(info2.Error)}`);
  out("dryrun");

  current = "pingpong";
  // As aos spawns by default: the public mainnet scheduler, the node as Authority.
  const aosLike = connect({ MODE: "mainnet", URL: HB, SCHEDULER: MAINNET_SCHEDULER, signer });
  const pong = await aosLike.spawn({ module, authority: address, tags: [{ name: "Name", value: "pong" }] });
  await evalLua(pong, `Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (msg) msg.reply({ Action = "Pong", Data = "pong " .. msg.Data }) end)`);
  await evalLua(pid, `Pongs = Pongs or {}; Handlers.add("pong", Handlers.utils.hasMatchingTag("Action", "Pong"), function (msg) table.insert(Pongs, msg.Data) end)`);
  await evalLua(pid, `Send({ Target = "${pong}", Action = "Ping", Data = "1" })`);
  await until("pong", async () => {
    const { r } = await evalLua(pid, "return table.concat(Pongs, ',')");
    return outputData(r) === "pong 1";
  });
  out("pingpong", { pong });

  current = "patch";
  await evalLua(pid, `Send({ device = "patch@1.0", balances = { [ao.id] = "100" } })`);
  const bal = await until("now/balances", async () => {
    const res = await fetch(`${HB}/${pid}~process@1.0/now/balances/${pid}`);
    return res.ok ? res.text() : null;
  });
  assert(bal === "100", `now/balances/${pid} = ${bal}`);
  out("patch", { balance: bal });
}

main().catch((e) => {
  console.log(JSON.stringify({ step: current, ok: false, error: String(e && e.stack ? e.stack : e) }));
  process.exit(1);
});
