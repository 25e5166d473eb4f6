#!/usr/bin/env node
// Verifies files with the real arbundles@0.11.2 and prints one JSON line per file.
//
// usage: node verify.js FILE...            (each FILE is one raw ANS-104 data item)
//        node verify.js --bundle FILE...   (each FILE is a raw bundle binary)
//
// Item line:   {"file","valid","id","signatureType","ownerAddress"[,"error"]}
// Bundle line: {"file","valid","ids","count"[,"error"]}
// Never throws on bad input: problems are reported as valid:false with "error".
// Exit code is 0 unless the command line itself is wrong.
"use strict";

const fs = require("fs");
const crypto = require("crypto");
const { DataItem, Bundle } = require("arbundles");

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const errMsg = (e) => (e && e.message ? e.message : String(e));

// Reads a property that may throw on malformed input; returns fallback instead.
function safe(fn, fallback = null) {
  try {
    return fn();
  } catch (_) {
    return fallback;
  }
}

async function verifyItem(file) {
  const out = { file, valid: false, id: null, signatureType: null, ownerAddress: null };
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    out.error = errMsg(e);
    return out;
  }
  try {
    out.signatureType = safe(() => buf.readUInt16LE(0));
    const item = new DataItem(buf);
    // Fields first, so they are reported even when verification throws.
    out.id = safe(() => item.id);
    const owner = safe(() => item.rawOwner);
    if (owner) out.ownerAddress = b64url(crypto.createHash("sha256").update(owner).digest());
    out.valid = (await DataItem.verify(buf)) === true;
  } catch (e) {
    out.valid = false;
    out.error = errMsg(e);
  }
  return out;
}

async function verifyBundle(file) {
  const out = { file, valid: false, ids: [], count: 0 };
  try {
    const buf = fs.readFileSync(file);
    if (buf.length < 32) throw new Error(`bundle too short: ${buf.length} bytes`);
    const bundle = new Bundle(buf);
    out.count = bundle.length;
    out.ids = bundle.getIds();
    out.valid = (await bundle.verify()) === true;
  } catch (e) {
    out.valid = false;
    out.error = errMsg(e);
  }
  return out;
}

async function main() {
  let args = process.argv.slice(2);
  let bundleMode = false;
  if (args[0] === "--bundle") {
    bundleMode = true;
    args = args.slice(1);
  }
  if (args.length === 0) {
    console.error("usage: node verify.js [--bundle] FILE...");
    process.exit(2);
  }
  for (const file of args) {
    let res;
    try {
      res = bundleMode ? await verifyBundle(file) : await verifyItem(file);
    } catch (e) {
      res = { file, valid: false, error: errMsg(e) };
    }
    process.stdout.write(JSON.stringify(res) + "\n");
  }
}

process.on("unhandledRejection", (e) => {
  console.error("unhandled rejection:", errMsg(e));
});

main().catch((e) => {
  console.error(errMsg(e));
  process.exit(1);
});
