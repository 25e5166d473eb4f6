package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/aonode/aonode/explorer"
)

func init() { root.subs = append(root.subs, explorerCmd) }

var explorerCmd = &command{
	name:    "explorer",
	summary: "serve the web explorer in front of a gateway, SU, CU and MU",
	help: `Serves the web explorer (the one 'aonode run' serves on --explorer-port) for units that
run on their own: the network's units and live counters, processes, schedules, results,
patch@1.0 state, cron ticks, the flow of messages between processes, modules, wallets,
and a read-only dry-run console. The page reads only the units' public HTTP APIs,
through a read-only proxy on this port (GET and HEAD, and POST only to the gateway's
/graphql and the CU's /dry-run), so one port is all the browser needs.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 4005, "listen `PORT`")
		host := fs.String("host", "127.0.0.1", "listen `ADDRESS` (0.0.0.0 to serve other machines)")
		gateway := fs.String("gateway-url", envOr("GATEWAY_URL", "http://localhost:4000"), "gateway `URL` (default $GATEWAY_URL, then the local gateway)")
		su := fs.String("su-url", envOr("SU_URL", "http://localhost:4003"), "Scheduler Unit `URL` (default $SU_URL, then the local SU)")
		cu := fs.String("cu-url", envOr("CU_URL", "http://localhost:4004"), "Compute Unit `URL` (default $CU_URL, then the local CU)")
		mu := fs.String("mu-url", envOr("MU_URL", "http://localhost:4002"), "Messenger Unit `URL` (default $MU_URL, then the local MU)")
		hbURL := fs.String("hb-url", envOr("HB_URL", ""), "AO-Core surface `URL` for patch@1.0 state (default $HB_URL; empty: not shown)")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			ex, err := explorer.New(explorer.Config{GatewayURL: *gateway, SUURL: *su, CUURL: *cu, MUURL: *mu, HBURL: *hbURL})
			if err != nil {
				return err
			}
			ln, err := listen(*host, *port)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "aonode explorer: http://%s (gateway %s, SU %s, CU %s, MU %s)\n", ln.Addr(), *gateway, *su, *cu, *mu)
			return serveHTTP(ctx, ln, ex.Handler())
		}
	},
}
