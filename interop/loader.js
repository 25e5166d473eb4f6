// Runs an AO module under the reference host, @permaweb/ao-loader, the way
// the reference CU drives it, for differential tests of cu/wasm.
//
//   node loader.js run WASM FORMAT INPUT.json
//     INPUT.json is a JSON array of {"msg": "<json>", "env": "<json>"} whose
//     strings are passed to handle() after JSON.parse (they must round-trip
//     through JSON.stringify unchanged, so both hosts see identical bytes).
//     Prints one line per message, "@@ao " followed by JSON:
//       {"result": {Output, Messages, Spawns, Assignments, Patches, GasUsed, Error},
//        "memSize": n, "memSha256": hex, "ms": t}
//     memSize/memSha256 describe the state the next message starts from: after
//     a failure (a thrown response or a response with Error) that is the
//     previous memory, loaded into a fresh loader instance as the CU does.
//
//   node loader.js bench WASM FORMAT N
//     Boots aos, adds a Ping handler and times N Ping messages on the live
//     instance; prints {"n", "ms", "perSecond", "replayPerSecond", "cpuPerSecond", "replayCpuPerSecond"}.
//   node loader.js bench-reload WASM FORMAT N
//     The same, passing the memory in and out of every handle() call, as the
//     reference CU does by default.
'use strict'
const fs = require('fs')
const crypto = require('crypto')
const AoLoader = require('@permaweb/ao-loader')

const [mode, wasmPath, format, arg] = process.argv.slice(2)
const wasm = fs.readFileSync(wasmPath)
const options = {
  format,
  inputEncoding: 'JSON-V1',
  outputEncoding: 'JSON-V1',
  memoryLimit: 1073741824,
  computeLimit: 9000000000000,
  extensions: [],
  UNSAFE_MEMORY: true
}
// Result lines carry a prefix: the process itself may print to stdout.
const log = (line) => process.stdout.write('@@ao ' + JSON.stringify(line) + '\n')
const sha = (u8) => crypto.createHash('sha256').update(u8).digest('hex')

// The glue replaces the global Date.now with a counter starting at 10000 that
// every emscripten FS operation in this node process also advances, so the
// value a process sees depends on the host's history. Lua's boot reads it
// (time(NULL) for the string-hash seed), and the timespec it leaves on the C
// stack ends up in memory images. Pin it to what cu/wasm does: one counter
// per process history, 10000, 10001, ..., advanced only by the module.
let clock = 10000
const pinDateNow = () => { Date.now = () => clock++ }

async function run (inputs) {
  let handle = await AoLoader(wasm, options)
  pinDateNow()
  let prev = null // memory after the last good message (a copy)
  let fresh = true // the live instance does not hold prev yet
  for (const { msg, env } of inputs) {
    const m = JSON.parse(msg)
    const e = JSON.parse(env)
    if (JSON.stringify(m) !== msg || JSON.stringify(e) !== env) {
      throw new Error('input does not round-trip through JSON.stringify: ' + msg)
    }
    const t0 = performance.now()
    let result
    try {
      const r = await handle(fresh ? prev : null, m, e)
      result = {
        Output: r.Output, Messages: r.Messages, Spawns: r.Spawns, Assignments: r.Assignments,
        Patches: r.Patches, GasUsed: r.GasUsed, Error: r.Error
      }
      if (!r.Error) {
        prev = new Uint8Array(r.Memory.slice(0))
        fresh = false
      }
    } catch (err) {
      result = { Error: typeof err === 'string' ? err : String(err && err.message ? err.message : err) }
    }
    const ms = performance.now() - t0
    if (result.Error) {
      // The CU discards the instance and continues from the previous memory.
      handle = await AoLoader(wasm, options)
      pinDateNow()
      fresh = true
    }
    const mem = prev || null
    log({ result, memSize: mem ? mem.length : 0, memSha256: mem ? sha(mem) : '', ms })
  }
}

async function bench (n, reload) {
  const handle = await AoLoader(wasm, options)
  const pid = 'PROCESS_ID_0000000000000000000000000000000a'
  const owner = 'OWNER_ADDRESS_00000000000000000000000000001'
  const env = { Process: { Id: pid, Owner: owner, Tags: [{ name: 'Module', value: 'M' }] }, Module: { Id: 'M', Owner: owner, Tags: [] } }
  let nonce = 0
  const msg = (over) => Object.assign({ Id: 'M' + nonce, Owner: owner, From: owner, Target: pid, Tags: [], Data: '', Nonce: nonce++, Timestamp: 1700000000000 + nonce, 'Block-Height': 1, Cron: false, 'Read-Only': false }, over)
  const tBoot = performance.now()
  const cpuBoot = process.cpuUsage()
  await handle(null, msg({ Id: pid, Tags: [{ name: 'Type', value: 'Process' }, { name: 'Module', value: 'M' }] }), env)
  await handle(null, msg({ Tags: [{ name: 'Action', value: 'Eval' }], Data: 'Handlers.add("ping", "Ping", function (m) m.reply({ Data = "pong" }) end)' }), env)
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  let r
  let mem = null
  for (let i = 0; i < n; i++) {
    r = await handle(reload ? mem : null, msg({ Tags: [{ name: 'Action', value: 'Ping' }] }), env)
    if (reload) mem = r.Memory
    if (r.Error || r.Messages.length !== 1) throw new Error('bad ping result ' + JSON.stringify(r.Error))
  }
  const end = performance.now()
  const ms = end - t0
  // CPU time of the whole node process (its GC threads included), in s.
  const cpuSince = (c) => { const d = process.cpuUsage(c); return (d.user + d.system) / 1e6 }
  // replayPerSecond: boot, the Eval and the n Pings, as a full replay.
  log({
    n, ms, perSecond: n / ms * 1000, replayPerSecond: (n + 2) / (end - tBoot) * 1000,
    cpuPerSecond: n / cpuSince(cpu0), replayCpuPerSecond: (n + 2) / cpuSince(cpuBoot),
    memSize: r.Memory.byteLength
  })
}

const main = mode === 'bench' || mode === 'bench-reload'
  ? bench(Number(arg), mode === 'bench-reload')
  : run(JSON.parse(fs.readFileSync(arg, 'utf8')))
main.catch((err) => { process.stderr.write(String(err && err.stack ? err.stack : err) + '\n'); process.exit(1) })
