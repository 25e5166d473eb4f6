#!/usr/bin/env node
// Drives a running aonode with the unmodified @permaweb/aoconnect@0.0.98 (legacy
// mode) through the flows a user meets: publish a module, spawn, Eval, ping-pong
// between processes, spawn a child, dry-run, results paging, cron through monitor,
// and assign. Each step prints one JSON line {"step","ok",...}; the first failed
// step prints {"step","ok":false,"error"} and the script exits 1.
//
// usage: MU_URL=… CU_URL=… GATEWAY_URL=… [MODULE_FORMAT=…] node aoconnect.js WALLET.json MODULE.wasm MU_ADDRESS SCHEDULER_ADDRESS [STEP...]
// MODULE_FORMAT defaults to wasm32-unknown-emscripten4 (aos 2.0.4); aos 2.0.6 is
// wasm64-unknown-emscripten-draft_2024_02_15.
"use strict";

const fs = require("fs");
const { createData, ArweaveSigner } = require("arbundles");

const [walletPath, modulePath, muAddress, scheduler, ...only] = process.argv.slice(2);
if (!walletPath || !modulePath || !muAddress || !scheduler) {
  console.error("usage: node aoconnect.js WALLET.json MODULE.wasm MU_ADDRESS SCHEDULER_ADDRESS [STEP...]");
  process.exit(2);
}
for (const v of ["MU_URL", "CU_URL", "GATEWAY_URL"]) {
  if (!process.env[v]) {
    console.error(`${v} must be set`);
    process.exit(2);
  }
}
const ao = require("@permaweb/aoconnect");
const jwk = JSON.parse(fs.readFileSync(walletPath, "utf8"));
const signer = ao.createDataItemSigner(jwk);
// The AO address of the wallet: base64url(SHA-256(modulus)). Dry-runs name it as
// Owner, since aoconnect sends Owner "1234" otherwise and aos runs Eval only for its owner.
const myAddress = require("crypto").createHash("sha256").update(Buffer.from(jwk.n, "base64url")).digest("base64url");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function out(step, extra) {
  console.log(JSON.stringify({ step, ok: true, ...extra }));
}

// publishModule uploads the WASM as a Module data item, as `aonode module publish` does.
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
  assert(res.ok, `module upload: ${res.status} ${await res.text()}`);
  return item.id;
}

async function spawn(module, tags = [], data) {
  return ao.spawn({
    module,
    scheduler,
    signer,
    tags: [{ name: "Authority", value: muAddress }, ...tags],
    data,
  });
}

async function evalLua(process, code) {
  const id = await ao.message({ process, signer, tags: [{ name: "Action", value: "Eval" }], data: code });
  const r = await ao.result({ process, message: id });
  assert(!r.Error, `Eval ${JSON.stringify(code)}: ${JSON.stringify(r.Error)}`);
  return { id, r };
}

// until polls fn until it returns a truthy value (the network is asynchronous).
async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const outputData = (r) => (r && r.Output && typeof r.Output === "object" ? r.Output.data : r && r.Output);

async function main() {
  const want = (s) => only.length === 0 || only.includes(s);
  const module = await publishModule();
  out("publish", { module });

  const pid = await spawn(module, [{ name: "Name", value: "alpha" }]);
  out("spawn", { process: pid });

  if (want("eval")) {
    const { r } = await evalLua(pid, "return 1+1");
    assert(String(outputData(r)) === "2", `Eval return 1+1 gave ${JSON.stringify(r.Output)}`);
    out("eval", { output: outputData(r) });
  }

  if (want("pingpong")) {
    const pong = await spawn(module, [{ name: "Name", value: "pong" }]);
    await evalLua(pong, `Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (msg) msg.reply({ Action = "Pong", Data = "pong " .. msg.Data }) end)`);
    await evalLua(pid, `Pongs = Pongs or {}; Handlers.add("pong", Handlers.utils.hasMatchingTag("Action", "Pong"), function (msg) table.insert(Pongs, msg.Data) end)`);
    const rounds = 3;
    for (let i = 1; i <= rounds; i++) {
      await evalLua(pid, `Send({ Target = "${pong}", Action = "Ping", Data = "${i}" })`);
    }
    const got = await until("pongs", async () => {
      const { r } = await evalLua(pid, "return #Pongs");
      return Number(outputData(r)) === rounds ? r : null;
    });
    const { r } = await evalLua(pid, "return table.concat(Pongs, ',')");
    assert(outputData(r) === "pong 1,pong 2,pong 3", `pongs: ${outputData(r)}`);
    out("pingpong", { pongs: outputData(r), count: outputData(got) });
  }

  if (want("spawnchild")) {
    await evalLua(pid, `ChildSpawned = nil; Handlers.add("spawned", Handlers.utils.hasMatchingTag("Action", "Spawned"), function (msg) ChildSpawned = msg.Process end)`);
    await evalLua(pid, `Spawn(ao.env.Process.Tags.Module, { Tags = { Authority = "${muAddress}", Name = "child" } })`);
    const child = await until("Spawned", async () => {
      const { r } = await evalLua(pid, "return ChildSpawned or ''");
      return outputData(r) ? outputData(r) : null;
    });
    // A spawned child's Owner is its parent (From-Process), so ask it as the parent.
    const dr = await ao.dryrun({ process: child, Owner: pid, tags: [{ name: "Action", value: "Eval" }], data: "return ao.id .. ' ' .. Owner" });
    assert(outputData(dr) === `${child} ${pid}`, `child answers as ${JSON.stringify(dr.Output)}`);
    out("spawnchild", { child });
  }

  if (want("dryrun")) {
    await evalLua(pid, "Counter = 41");
    const dr = await ao.dryrun({ process: pid, Owner: myAddress, tags: [{ name: "Action", value: "Eval" }], data: "Counter = Counter + 1; return Counter" });
    assert(String(outputData(dr)) === "42", `dryrun gave ${JSON.stringify(dr.Output)}`);
    const { r } = await evalLua(pid, "return Counter");
    assert(String(outputData(r)) === "41", `dryrun changed state: Counter = ${outputData(r)}`);
    out("dryrun");
  }

  if (want("results")) {
    const page1 = await ao.results({ process: pid, sort: "ASC", limit: 2 });
    assert(page1.edges.length === 2, `results page of ${page1.edges.length}`);
    const page2 = await ao.results({ process: pid, sort: "ASC", limit: 2, from: page1.edges[1].cursor });
    assert(page2.edges.length > 0 && page2.edges[0].cursor !== page1.edges[1].cursor, "second results page");
    out("results", { first: page1.edges.length, second: page2.edges.length });
  }

  if (want("cron")) {
    const sink = await spawn(module, [{ name: "Name", value: "sink" }]);
    await evalLua(sink, `Ticks = 0; Handlers.add("tick", Handlers.utils.hasMatchingTag("Action", "Tick"), function (msg) Ticks = Ticks + 1 end)`);
    const cron = await spawn(module, [{ name: "Name", value: "cron" }, { name: "Cron-Interval", value: "1-second" }, { name: "Cron-Tag-Action", value: "Cron" }]);
    await evalLua(cron, `Handlers.add("cron", Handlers.utils.hasMatchingTag("Action", "Cron"), function (msg) Send({ Target = "${sink}", Action = "Tick" }) end)`);
    await ao.monitor({ process: cron, signer });
    await until("cron ticks", async () => {
      const { r } = await evalLua(sink, "return Ticks");
      return Number(outputData(r)) >= 2;
    });
    await ao.unmonitor({ process: cron, signer });
    out("cron");
  }

  if (want("assign")) {
    const other = await spawn(module, [{ name: "Name", value: "other" }]);
    await evalLua(other, `ao.addAssignable("notes", function (msg) return msg.Action == "Note" end); Seen = nil; Handlers.add("note", Handlers.utils.hasMatchingTag("Action", "Note"), function (msg) Seen = msg.Data end)`);
    const note = await ao.message({ process: pid, signer, tags: [{ name: "Action", value: "Note" }], data: "assigned" });
    await ao.result({ process: pid, message: note });
    const assignment = await ao.assign({ process: other, message: note });
    assert(typeof assignment === "string" && assignment.length === 43, `assign returned ${assignment}`);
    await until("assignment", async () => {
      const { r } = await evalLua(other, "return Seen or ''");
      return outputData(r) === "assigned";
    });
    // What the assigned-to process sends afterwards is still delivered: the
    // MU pulls the assignment's result by the assignment id, which the CU
    // must answer, or every later outbox of that process waits behind it.
    await evalLua(pid, `Got = {}; Handlers.add("after", Handlers.utils.hasMatchingTag("Action", "After"), function (msg) table.insert(Got, msg.Data) end)`);
    await evalLua(other, `Send({ Target = "${pid}", Action = "After", Data = "after-assign" })`);
    await until("delivery after an assignment", async () => {
      const { r } = await evalLua(pid, "return table.concat(Got, ',')");
      return outputData(r) === "after-assign";
    });
    // The same after a process's own Assign from Lua.
    const note2 = await ao.message({ process: pid, signer, tags: [{ name: "Action", value: "Note" }], data: "assigned by lua" });
    await ao.result({ process: pid, message: note2 });
    await evalLua(pid, `Assign({ Processes = { "${other}" }, Message = "${note2}" })`);
    await until("Lua assignment", async () => {
      const { r } = await evalLua(other, "return Seen or ''");
      return outputData(r) === "assigned by lua";
    });
    await evalLua(other, `Send({ Target = "${pid}", Action = "After", Data = "after-lua-assign" })`);
    await until("delivery after a Lua assignment", async () => {
      const { r } = await evalLua(pid, "return table.concat(Got, ',')");
      return outputData(r) === "after-assign,after-lua-assign";
    });
    out("assign", { assignment });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(JSON.stringify({ step: "error", ok: false, error: String((e && e.stack) || e) }));
    process.exit(1);
  }
);
