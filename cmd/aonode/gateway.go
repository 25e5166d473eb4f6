package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/aonode/aonode/arweave"
	"github.com/aonode/aonode/internal/objstore"
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
a durable queue that retries until accepted.

A shared gateway (several behind one load balancer) keeps its index on PostgreSQL
(--database postgres://…) and the items' bytes in S3-compatible object storage
(--s3 http://KEY:SECRET@HOST:PORT/BUCKET). GET /healthz answers 200 while both
answer, 503 when either does not.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 4000, "listen `PORT`")
		host := fs.String("host", "0.0.0.0", "listen `ADDRESS`")
		data := fs.String("data", filepath.Join(".aonode", "gateway"), "data `DIR`")
		upstream := fs.String("upstream", "", "read-through remote gateway `URL` (e.g. https://arweave.net)")
		bundler := fs.String("bundler", "", "forward uploads to this bundler `URL` (e.g. https://up.arweave.net)")
		interval := fs.Duration("block-interval", time.Second, "cut a block this often when there are new items")
		maxItem := fs.Int64("max-item-size", 128<<20, "largest accepted upload in `BYTES`")
		database := fs.String("database", "", "index database `URL`: postgres://… shared by several gateways (default: SQLite in DIR)")
		s3 := fs.String("s3", envOr("AONODE_S3", ""), "keep item bytes in S3-compatible object storage at `URL` http(s)://KEY:SECRET@HOST:PORT/BUCKET[/PREFIX] (default $AONODE_S3; none: in the index)")
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
			obj, err := openObjects(ctx, *s3)
			if err != nil {
				ln.Close()
				return err
			}
			store, err := arweave.OpenWith(ctx, arweave.Options{Dir: *data, Database: *database, Objects: obj})
			if err != nil {
				ln.Close()
				return err
			}
			defer store.Close()
			log := logger(*verbose)
			gw := arweave.NewGateway(store, arweave.Config{MaxItemSize: *maxItem, Upstream: *upstream, Bundler: *bundler, Logger: log})
			go gw.Run(ctx)
			go store.MineEvery(ctx, *interval, func(err error) { log.Error("cutting a block failed", "err", err) })
			where := *data
			if *database != "" {
				where = "PostgreSQL"
			}
			if obj != nil {
				where += ", bytes in " + obj.String()
			}
			fmt.Fprintf(stderr, "aonode gateway: listening on http://%s, index in %s, height %d\n", ln.Addr(), where, store.Current().Height)
			return serveHTTP(ctx, ln, gw.Handler())
		}
	},
}

func init() { root.subs = append(root.subs, gatewayCmd) }

// openObjects opens the object store named by an --s3 URL (nil for "").
func openObjects(ctx context.Context, url string) (*objstore.Store, error) {
	if url == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return objstore.Open(ctx, url)
}
