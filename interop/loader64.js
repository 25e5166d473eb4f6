// loader.js for memory64 modules: node 20 compiles memory64 only behind
// --experimental-wasm-memory64 (the reference CU always runs node with it).
// Setting the V8 flag here, before any WebAssembly is compiled, spares the Go
// tests a node command line of their own:
//
//   node loader64.js run WASM FORMAT INPUT.json
//   node loader64.js bench WASM FORMAT N
//
// Same arguments and output as loader.js (see there).
'use strict'
require('v8').setFlagsFromString('--experimental-wasm-memory64')
require('./loader.js')
