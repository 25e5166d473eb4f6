package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/aonode/aonode/mu"
	"github.com/aonode/aonode/placement"
	"github.com/aonode/aonode/wallet"
)

func init() {
	root.subs = append(root.subs, muCmd)
	benchCmd.subs = append(benchCmd.subs, benchMUCmd)
}

var muCmd = &command{
	name:    "mu",
	summary: "run a Messenger Unit",
	help: `Runs an AO Messenger Unit with the reference MU's HTTP API: POST / (a signed
Process or Message item; 202 {"message","id"}), POST /?process-id=&assign= (with
base-layer and exclude), GET / (text), GET /?debug=1&process=&message= (trace),
POST and DELETE /monitor/{process} (cron), GET /metrics.

Items go to the process's SU (found from its Scheduler tag and the SU's
Scheduler-Location record on --gateway-url). Results are pulled from --cu-url and
their outboxes pushed onward, recursively. --cu-url may list several CUs
(comma-separated), and --cu-discover adds the CUs whose Compute-Price records the
gateway holds: each process then runs on the cheapest healthy CU (equal ones share
processes by rendezvous hashing), sticks to it, and fails over to the next when it
stops answering (a 402 from a CU tries the next one, or later); see "Choosing CUs"
in the README. Every step is a task in a durable queue
in --data; an outbound item is signed by the MU wallet and stored before it is
sent, so retries and restarts deliver each outbox message exactly once.
The wallet defaults to DATA/mu-wallet.json, created (Arweave RSA-4096) on first start.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 4002, "listen `PORT`")
		host := fs.String("host", "0.0.0.0", "listen `ADDRESS`")
		data := fs.String("data", filepath.Join(".aonode", "mu"), "data `DIR`")
		walletPath := fs.String("wallet", "", "MU wallet `FILE` (default DIR/mu-wallet.json)")
		walletType := fs.String("wallet-type", wallet.Ed25519, "`type` of a wallet created on first start: ed25519 (fast signatures) or arweave (RSA-4096)")
		gateway := fs.String("gateway-url", envOr("GATEWAY_URL", "http://localhost:4000"), "gateway `URL` (default $GATEWAY_URL, then the local gateway)")
		cu := fs.String("cu-url", envOr("CU_URL", "http://localhost:4004"), "Compute Unit `URLS`, comma-separated (default $CU_URL, then the local CU)")
		discover := fs.Bool("cu-discover", false, "also use the CUs whose Compute-Price records --gateway-url holds")
		rate := fs.String("rate-limit", "", "per-wallet ingress limit `N/INTERVAL`, e.g. 100/1m (default off)")
		cron := fs.Duration("cron-interval", time.Second, "how often monitored processes are polled")
		workers := fs.Int("workers", 16, "concurrent crank steps")
		spawnPush := fs.Bool("spawn-push", false, "also crank a new process's boot result")
		verbose := fs.Bool("v", false, "log informational messages too")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			rl, err := mu.ParseRateLimit(*rate)
			if err != nil {
				return usageError("--rate-limit: %v", err)
			}
			if *walletPath == "" {
				*walletPath = filepath.Join(*data, "mu-wallet.json")
			}
			w, err := loadOrCreateWallet(*walletPath, *walletType)
			if err != nil {
				return err
			}
			cus, err := placement.ParseURLs(*cu)
			if err != nil {
				return usageError("--cu-url: %v", err)
			}
			if len(cus) == 0 && !*discover {
				return usageError("--cu-url: no CU URL (or --cu-discover)")
			}
			ln, err := listen(*host, *port)
			if err != nil {
				return err
			}
			srv, err := mu.New(ctx, mu.Config{
				Signer: w, DataDir: *data, GatewayURL: *gateway, CUURLs: cus, CUDiscover: *discover, RateLimit: rl, CronInterval: *cron,
				Workers: *workers, SpawnPush: *spawnPush, Logger: logger(*verbose),
			})
			if err != nil {
				ln.Close()
				return err
			}
			defer srv.Close()
			fmt.Fprintf(stderr, "aonode mu: listening on http://%s, MU address %s, gateway %s, CU %s\n", ln.Addr(), srv.Address(), *gateway, *cu)
			return serveHTTP(ctx, ln, srv.Handler())
		}
	},
}

var benchMUCmd = &command{
	name:    "mu",
	summary: "Messenger Unit: ping-pong round-trip latency and messages per second",
	help: `Runs a loopback network (gateway, a real SU, a scripted CU that answers each Ping
with a Pong) and an MU per wallet kind, then prints the round-trip latency of
user-message → push → reply (p50, p99) for sequential ping-pongs, and the messages
per second pushed through the MU with --concurrency ping-pongs in flight.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		d := fs.Duration("duration", 3*time.Second, "measuring time per row")
		wallets := fs.String("wallets", "arweave,ed25519", "MU wallet kinds")
		conc := fs.Int("concurrency", 16, "ping-pongs in flight for the throughput row")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			return mu.RunBench(ctx, mu.BenchConfig{Duration: *d, Wallets: strings.Split(*wallets, ","), Concurrency: *conc, Log: stderr}, stdout)
		}
	},
}
