package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aonode/aonode/su"
	"github.com/aonode/aonode/wallet"
)

func init() { root.subs = append(root.subs, suCmd, benchCmd) }

var suCmd = &command{
	name:    "su",
	summary: "run a Scheduler Unit",
	help: `Runs an AO Scheduler Unit with the reference SU's HTTP API (POST / to schedule a
Process or Message, POST /?process-id=&assign= to assign, GET /{process-id} for the
schedule, /processes/{id}, /{id}/latest, /timestamp, /health, /metrics).

Every assignment is committed to the store (embedded SQLite in --data, or PostgreSQL
with --database postgres://…) before the answer, then published to the permanent
store (--gateway-url, default $GATEWAY_URL, then http://localhost:4000) from a durable
outbox that retries until the gateway accepts them. On start the SU
publishes a Scheduler-Location record for --url. The SU wallet defaults to
DATA/su-wallet.json, created (Arweave RSA-4096) on first start.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 4003, "listen `PORT`")
		host := fs.String("host", "0.0.0.0", "listen `ADDRESS`")
		data := fs.String("data", filepath.Join(".aonode", "su"), "data `DIR`")
		database := fs.String("database", "", "database `URL`: postgres://… (default: SQLite in DIR)")
		walletPath := fs.String("wallet", "", "SU wallet `FILE` (default DIR/su-wallet.json)")
		walletType := fs.String("wallet-type", wallet.Ed25519, "`type` of a wallet created on first start: ed25519 (fast signatures) or arweave (RSA-4096)")
		publicURL := fs.String("url", "", "public `URL` published in the Scheduler-Location record (default http://localhost:PORT)")
		gateway := fs.String("gateway-url", envOr("GATEWAY_URL", "http://localhost:4000"), "permanent store (gateway or bundler) `URL`; empty for none (default $GATEWAY_URL, then the local gateway)")
		ttl := fs.Duration("ttl", time.Hour, "Time-To-Live of the Scheduler-Location record")
		legacy := fs.Bool("legacy", false, "legacy mode: no process assignment (AOP-6 off), messages start at nonce 0")
		verbose := fs.Bool("v", false, "log informational messages too")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			if *walletPath == "" {
				*walletPath = filepath.Join(*data, "su-wallet.json")
			}
			w, err := loadOrCreateWallet(*walletPath, *walletType)
			if err != nil {
				return err
			}
			if *publicURL == "" {
				*publicURL = "http://localhost:" + strconv.Itoa(*port)
			}
			cfg := su.Config{
				Signer: w, Database: *database, DataDir: *data, URL: *publicURL, LocationTTL: *ttl, Legacy: *legacy,
				Logger: logger(*verbose),
			}
			if *gateway != "" {
				cfg.Chain = su.NewHTTPChain(*gateway)
			} else {
				fmt.Fprintln(stderr, "aonode su: no --gateway-url: Block-Height stays at its last value (0 at first) and items wait in the outbox")
			}
			// Listen before su.New: it publishes a Scheduler-Location record
			// for --url, which must not point at a port this SU never got.
			ln, err := listen(*host, *port)
			if err != nil {
				return err
			}
			srv, err := su.New(ctx, cfg)
			if err != nil {
				ln.Close()
				return err
			}
			defer srv.Close()
			fmt.Fprintf(stderr, "aonode su: listening on http://%s (public %s), SU address %s, %s store\n",
				ln.Addr(), *publicURL, srv.Address(), storeName(*database))
			return serveHTTP(ctx, ln, srv.Handler())
		}
	},
}

func storeName(database string) string {
	if strings.HasPrefix(database, "postgres") {
		return "PostgreSQL"
	}
	return "SQLite"
}

// loadOrCreateWallet loads a unit wallet, creating it on first start.
func loadOrCreateWallet(path, kind string) (*wallet.Wallet, error) {
	if !slices.Contains(wallet.Kinds, kind) {
		return nil, usageError("unknown wallet type %q (want %s)", kind, strings.Join(wallet.Kinds, ", "))
	}
	w, _, err := wallet.LoadOrCreate(path, kind, func(p string) {
		fmt.Fprintf(stderr, "aonode: creating a new %s wallet at %s ...\n", kind, p)
	})
	return w, err
}

var benchCmd = &command{
	name:    "bench",
	summary: "measure the node's components",
	subs: []*command{{
		name:    "su",
		summary: "Scheduler Unit throughput: raw signing vs assignments per second",
		help: `Prints, for each SU wallet kind and store: the wallet's raw signing rate (sequential, and on
as many goroutines as cores: what the hardware allows), then assignments per second for one
process and for N processes (exactly N, scheduled concurrently by 4N clients), with the
percentages of the raw rate and of cores × raw rate. The incoming messages are signed
beforehand by a --clients wallet (default arweave: RSA-4096, as aoconnect users and MUs
sign) and the SU verifies each, signs its assignment, group-commits and publishes to a
discarding permanent store; no HTTP. PostgreSQL rows are skipped when --postgres is
unreachable.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			d := fs.Duration("duration", 2*time.Second, "measuring time per row")
			n := fs.Int("processes", 64, "processes in the many-process row")
			wallets := fs.String("wallets", "arweave,ed25519", "SU wallet kinds")
			clients := fs.String("clients", "arweave", "wallet kind that signs the incoming messages (arweave or ed25519)")
			stores := fs.String("stores", "sqlite,postgres", "stores")
			pg := fs.String("postgres", "postgres://postgres@127.0.0.1:5432/test", "PostgreSQL `URL` (a scratch schema is created and dropped)")
			return func(ctx context.Context, args []string) error {
				if err := needArgs(args, 0, "no arguments"); err != nil {
					return err
				}
				_, err := su.RunBench(ctx, su.BenchConfig{
					Duration: *d, Processes: *n, Wallets: strings.Split(*wallets, ","), Clients: *clients, Stores: strings.Split(*stores, ","),
					PostgresURL: *pg, Log: stderr,
				}, stdout)
				return err
			}
		},
	}},
}
