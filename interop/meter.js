// Applies the reference load-time gas metering, @permaweb/wasm-metering's
// meterWASM as @permaweb/ao-loader calls it for the *-metering Module-Formats
// (meterType i32 for wasm32, i64 for wasm64), for differential tests of
// cu/wasm/meter.
//
//   node meter.js IN.wasm OUT.wasm [i32|i64]
//     Writes the metered module to OUT.wasm. On failure (the reference
//     decoder rejects the module) prints "@@meter-error <message>" to stdout
//     and exits with status 3.
'use strict'
const fs = require('fs')
const metering = require('@permaweb/wasm-metering')

const [inPath, outPath, meterType = 'i32'] = process.argv.slice(2)
if (!inPath || !outPath) {
  process.stderr.write('usage: node meter.js IN.wasm OUT.wasm [i32|i64]\n')
  process.exit(2)
}
let out
try {
  out = metering.meterWASM(fs.readFileSync(inPath), { meterType })
} catch (e) {
  process.stdout.write('@@meter-error ' + String(e && e.message ? e.message : e).replace(/\n/g, ' ') + '\n')
  process.exit(3)
}
fs.writeFileSync(outPath, out)
