// loader.js with a Compute-Limit of choice, for out-of-gas tests of the
// -metering formats (loader.js always passes computeLimit 9e12):
//
//   AO_COMPUTE_LIMIT=N node loaderlimit.js run WASM FORMAT INPUT.json
//
// Same arguments and output as loader.js. The V8 flag of loader64.js is set
// too, so that memory64 modules load.
'use strict'
require('v8').setFlagsFromString('--experimental-wasm-memory64')
const limit = Number(process.env.AO_COMPUTE_LIMIT)
if (!(limit > 0)) throw new Error('AO_COMPUTE_LIMIT must be a positive number')
// loader.js requires @permaweb/ao-loader: hand it a wrapper that sets the
// limit on the options object it passes (which the loader then reads).
const id = require.resolve('@permaweb/ao-loader')
const AoLoader = require(id)
require.cache[id].exports = (binary, options) => {
  options.computeLimit = limit
  return AoLoader(binary, options)
}
require('./loader.js')
