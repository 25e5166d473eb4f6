package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/aonode/aonode/arweave"
)

var gatewayCmd = &command{
	name:    "gateway",
	summary: "run the Arweave-compatible gateway and permanent store",
	help: `Runs the permanent store (SQLite in --data) behind the Arweave gateway API that AO
units and clients use: GET/HEAD /{id}, /raw/{id}, /tx/{id}, /tx/{id}/status, /info,
/price/{bytes}, /block/height/{h}, POST /tx and /tx/arweave (bundler uploads: a signed
data item, which is verified and, if it is a bundle, unbundled), and POST/GET /graphql.

New items are visible at once and are put into a local block every --block-interval.
With --upstream, ids and queries that are not local are read from a remote gateway
(data is cached); with --bundler, every new upload is also forwarded to a bundler from
a durable queue that retries until accepted.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 4000, "listen `PORT`")
		host := fs.String("host", "0.0.0.0", "listen `ADDRESS`")
		data := fs.String("data", filepath.Join(".aonode", "gateway"), "data `DIR`")
		upstream := fs.String("upstream", "", "read-through remote gateway `URL` (e.g. https://arweave.net)")
		bundler := fs.String("bundler", "", "forward uploads to this bundler `URL` (e.g. https://up.arweave.net)")
		interval := fs.Duration("block-interval", time.Second, "cut a block this often when there are new items")
		maxItem := fs.Int64("max-item-size", 128<<20, "largest accepted upload in `BYTES`")
		verbose := fs.Bool("v", false, "log informational messages too")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			if *interval <= 0 {
				return usageError("--block-interval must be positive")
			}
			ln, err := listen(*host, *port)
			if err != nil {
				return err
			}
			store, err := arweave.Open(ctx, *data)
			if err != nil {
				return err
			}
			defer store.Close()
			log := logger(*verbose)
			gw := arweave.NewGateway(store, arweave.Config{MaxItemSize: *maxItem, Upstream: *upstream, Bundler: *bundler, Logger: log})
			go gw.Run(ctx)
			go store.MineEvery(ctx, *interval, func(err error) { log.Error("cutting a block failed", "err", err) })
			fmt.Fprintf(stderr, "aonode gateway: listening on http://%s, data in %s, height %d\n", ln.Addr(), *data, store.Current().Height)
			return serveHTTP(ctx, ln, gw.Handler())
		}
	},
}

func init() { root.subs = append(root.subs, gatewayCmd) }
