#!/usr/bin/env node
// Generates ANS-104 data items and a bundle with the real arbundles@0.11.2,
// for wire-compatibility tests of the Go implementation.
//
// usage: node gen.js OUTDIR
//
// Writes OUTDIR/<case>.bin (raw item bytes), OUTDIR/manifest.json and
// OUTDIR/arweave-wallet.json (the freshly generated RSA JWK used for type 1).
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const {
  createData,
  bundleAndSignData,
  ArweaveSigner,
  SolanaSigner,
  HexSolanaSigner,
  EthereumSigner,
  TypedEthereumSigner,
} = require("arbundles");

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest();

// Minimal base58 (Bitcoin alphabet) encoder, so we do not depend on a
// transitive copy of bs58 being hoisted.
const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function bs58encode(buf) {
  let n = BigInt("0x" + (Buffer.from(buf).toString("hex") || "0"));
  let out = "";
  while (n > 0n) {
    out = B58[Number(n % 58n)] + out;
    n /= 58n;
  }
  for (const b of buf) {
    if (b !== 0) break;
    out = "1" + out;
  }
  return out;
}

// Ed25519 public key from a 32-byte seed via node's crypto (PKCS#8 wrapper).
function ed25519PublicKey(seed) {
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const priv = crypto.createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const jwk = crypto.createPublicKey(priv).export({ format: "jwk" });
  return Buffer.from(jwk.x, "base64url");
}

function makeSigners(outDir) {
  const { privateKey } = crypto.generateKeyPairSync("rsa", {
    modulusLength: 4096,
    publicExponent: 65537,
  });
  const jwk = privateKey.export({ format: "jwk" });
  fs.writeFileSync(path.join(outDir, "arweave-wallet.json"), JSON.stringify(jwk, null, 2) + "\n");

  const seed = Buffer.alloc(32, 0x07);
  const edPub = ed25519PublicKey(seed);
  const solKey = bs58encode(Buffer.concat([seed, edPub])); // bs58(seed ‖ pubkey)
  const ethKey = "0x" + "11".repeat(32);

  return {
    1: new ArweaveSigner(jwk),
    2: new SolanaSigner(solKey),
    3: new EthereumSigner(ethKey),
    4: new HexSolanaSigner(solKey),
    7: new TypedEthereumSigner(ethKey),
  };
}

async function describe(name, item) {
  return {
    name,
    file: name + ".bin",
    signatureType: item.signatureType,
    id: item.id,
    owner: b64url(item.rawOwner),
    ownerAddress: b64url(sha256(item.rawOwner)),
    target: item.rawTarget.length ? b64url(item.rawTarget) : "",
    anchor: item.rawAnchor.length ? b64url(item.rawAnchor) : "",
    tags: item.tags.map((t) => ({ name: t.name, value: t.value })),
    dataSize: item.rawData.length,
    deepHash: Buffer.from(await item.getSignatureData()).toString("hex"),
    valid: await item.isValid(),
  };
}

async function main() {
  const outDir = process.argv[2];
  if (!outDir) {
    console.error("usage: node gen.js OUTDIR");
    process.exit(2);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const t0 = Date.now();
  const signers = makeSigners(outDir);
  const manifest = [];

  async function emit(name, data, signer, opts) {
    const item = createData(data, signer, opts);
    await item.sign(signer);
    // arbundles rejects > 4096 tag bytes (MAX_TAG_BYTES); keep every case under it.
    if (item.rawTags.length > 4096) throw new Error(`${name}: ${item.rawTags.length} tag bytes > 4096`);
    fs.writeFileSync(path.join(outDir, name + ".bin"), item.getRaw());
    const entry = await describe(name, item);
    if (!entry.valid) throw new Error(`${name}: arbundles says its own item is invalid`);
    manifest.push(entry);
    return item;
  }

  // §12.3 / §12.4 deterministic vectors.
  const vectorTags = [
    { name: "Data-Protocol", value: "ao" },
    { name: "Type", value: "Message" },
    { name: "Unicode-ü", value: "välue ✓" },
  ];
  const vEth = await emit("vector-eth", "hello ao", signers[3], { tags: vectorTags });
  const vEd = await emit("vector-ed25519", "hello ao", signers[2], { tags: vectorTags });
  const expect = {
    "vector-eth": [vEth.id, "q9NKFW115KggOkbc5akVchYhKZZbHUEGc7KNDtn-klU"],
    "vector-ed25519": [vEd.id, "qL6qpNQVYCqBDGhOoArNGfJnhNf1BnBtXJ5zRfjbM8w"],
  };
  for (const [name, [got, want]] of Object.entries(expect)) {
    if (got !== want) throw new Error(`${name}: id ${got}, spec §12 says ${want}`);
  }

  const anchor = "00000000000000000000000000000001";
  const threeTags = [
    { name: "Data-Protocol", value: "ao" },
    { name: "Type", value: "Message" },
    { name: "Variant", value: "ao.TN.1" },
  ];
  const tags128 = Array.from({ length: 128 }, (_, i) => ({ name: `T${i}`, value: `v${i}` }));
  const maxValueTags = [{ name: "n", value: "v".repeat(3072) }];

  for (const type of [1, 2, 3, 4, 7]) {
    const s = signers[type];
    const p = `t${type}-`;
    const target = b64url(crypto.randomBytes(32));
    await emit(p + "notags", "hello", s, {});
    await emit(p + "emptydata", "", s, {
      tags: [
        { name: "Data-Protocol", value: "ao" },
        { name: "Type", value: "Message" },
      ],
    });
    await emit(p + "target-anchor", "hello ao", s, { target, anchor, tags: threeTags });
    await emit(p + "target-only", "hello target", s, { target: b64url(crypto.randomBytes(32)) });
    await emit(p + "anchor-only", "hello anchor", s, { anchor });
    await emit(p + "tags128", "many tags", s, { tags: tags128 });
    await emit(p + "maxname", "max name", s, { tags: [{ name: "n".repeat(1024), value: "v" }] });
    await emit(p + "maxvalue", "max value", s, { tags: maxValueTags });
    await emit(p + "binary", crypto.randomBytes(4096), s, {
      tags: [
        { name: "Content-Type", value: "application/octet-stream" },
        { name: "Unicode-ü", value: "välue ✓" },
      ],
    });
    if (type === 1 || type === 2) {
      await emit(p + "10mib", crypto.randomBytes(10 * 1024 * 1024), s, {
        tags: [{ name: "Content-Type", value: "application/octet-stream" }],
      });
    }
  }
  // Bundle of 100 items of mixed types 1, 2, 3, each signed by its own key.
  const items = [];
  const kinds = [1, 2, 3];
  for (let i = 0; i < 100; i++) {
    const s = signers[kinds[i % 3]];
    const item = createData(crypto.randomBytes(16 + crypto.randomInt(240)), s, {
      tags: [
        { name: "Index", value: String(i) },
        { name: "Kind", value: `t${kinds[i % 3]}` },
      ],
    });
    await item.sign(s);
    items.push(item);
  }
  const bundle = await bundleAndSignData(items, signers[1]);
  const ids = bundle.getIds();
  const wantIds = items.map((it) => it.id);
  if (JSON.stringify(ids) !== JSON.stringify(wantIds)) throw new Error("bundle ids out of order");
  if (!(await bundle.verify())) throw new Error("bundle100 does not verify");
  fs.writeFileSync(path.join(outDir, "bundle100.bin"), bundle.getRaw());
  manifest.push({ name: "bundle100", file: "bundle100.bin", bundle: true, ids });

  const bItem = createData(bundle.getRaw(), signers[1], {
    tags: [
      { name: "Bundle-Format", value: "binary" },
      { name: "Bundle-Version", value: "2.0.0" },
    ],
  });
  await bItem.sign(signers[1]);
  fs.writeFileSync(path.join(outDir, "bundle100-item.bin"), bItem.getRaw());
  const bEntry = await describe("bundle100-item", bItem);
  if (!bEntry.valid) throw new Error("bundle100-item: invalid");
  bEntry.bundleIds = ids;
  manifest.push(bEntry);

  fs.writeFileSync(path.join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  console.error(`gen.js: wrote ${manifest.length} entries to ${outDir} in ${Date.now() - t0} ms`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
