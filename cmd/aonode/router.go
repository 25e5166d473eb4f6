package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aonode/aonode/placement"
	"github.com/aonode/aonode/router"
)

func init() { root.subs = append(root.subs, routerCmd) }

var routerCmd = &command{
	name:    "router",
	summary: "run a CU router: one CU URL in front of several Compute Units",
	help: `Serves the reference CU's routes (/result/{message}?process-id=, /results/{process},
POST /dry-run?process-id=, /state/{process}, /cron/{process}, /attestation/{message}?process-id=,
POST /verify, /usage/{process}) and proxies each request to the CU chosen for its process:
the cheapest healthy CU of --cu-url (comma-separated) and, with --cu-discover, of the
Compute-Price records on --gateway-url; equal CUs share processes by rendezvous hashing;
a CU that does not answer (or answers 5xx) is demoted and its processes fail over to
their next CU until a health check (GET /, with back-off) finds it again; a 402 tries
the next CU. Clients and MUs use the router's URL as their one CU URL; the header
X-Aonode-Cu says which CU answered.

GET / shows the placement table (CUs in choice order, prices, health, processes each
served last, pins), GET /healthz answers 200 while a CU is healthy (503 otherwise), GET
/metrics has the placement counters. --data DIR/pins.json pins processes to CUs
({"process id": "CU URL"}), read at start.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 4010, "listen `PORT`")
		host := fs.String("host", "0.0.0.0", "listen `ADDRESS`")
		data := fs.String("data", filepath.Join(".aonode", "router"), "data `DIR` (pins.json)")
		gateway := fs.String("gateway-url", envOr("GATEWAY_URL", "http://localhost:4000"), "gateway `URL` for --cu-discover (default $GATEWAY_URL, then the local gateway)")
		cus := fs.String("cu-url", envOr("CU_URL", "http://localhost:4004"), "Compute Unit `URLS`, comma-separated (default $CU_URL, then the local CU)")
		discover := fs.Bool("cu-discover", false, "also use the CUs whose Compute-Price records --gateway-url holds")
		timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for a CU's answer to start")
		verbose := fs.Bool("v", false, "log informational messages too")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			urls, err := placement.ParseURLs(*cus)
			if err != nil {
				return usageError("--cu-url: %v", err)
			}
			if len(urls) == 0 && !*discover {
				return usageError("--cu-url: no CU URL (or --cu-discover)")
			}
			if err := os.MkdirAll(*data, 0o700); err != nil {
				return fmt.Errorf("data directory: %w", err)
			}
			pc := placement.Config{URLs: urls, Logger: logger(*verbose)}
			if *discover {
				pc.GatewayURL = *gateway
			}
			p, err := placement.New(pc)
			if err != nil {
				return err
			}
			rt, err := router.New(router.Config{Placer: p, DataDir: *data, Timeout: *timeout, Logger: logger(*verbose)})
			if err != nil {
				return err
			}
			ln, err := listen(*host, *port)
			if err != nil {
				return err
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p.Refresh(rctx)
			cancel()
			go p.Run(ctx)
			fmt.Fprintf(stderr, "aonode router: listening on http://%s, %d CUs known (%d healthy)\n", ln.Addr(), len(p.Table().CUs), p.Healthy())
			return serveHTTP(ctx, ln, rt.Handler())
		}
	},
}
