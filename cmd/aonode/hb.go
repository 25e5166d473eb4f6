package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/aonode/aonode/hb"
)

func init() { root.subs = append(root.subs, hbCmd) }

var hbCmd = &command{
	name:    "hb",
	summary: "serve the AO-Core (mainnet) HTTP surface in front of a gateway, SU, CU and MU",
	help: `Serves the HTTP surface today's clients call (aos 2.x in its default mainnet mode,
@permaweb/aoconnect with MODE 'mainnet'), in HyperBEAM's path grammar, over the legacy
units: GET /~meta@1.0/info[/address], POST /push (spawn), and per process
/{pid}~process@1.0/push, /compute/results={slot|message}, /slot/current,
/as=execution/compute&Tag=Value (dry-run), /schedule?from=&to=, /now/<key> (state the
process exposed with patch@1.0 messages). Writes go through the MU (verified, scheduled,
computed, outbox cranked); reads come from the SU and CU.

The node address (/~meta@1.0/info/address) is the MU's, which aos makes the process
Authority and aoconnect the Scheduler. 'aonode run' serves this surface itself (--hb-port)
and schedules such processes on its SU; in front of separate units, spawn with a
scheduler they can locate: aos --scheduler <SU address>.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 8734, "listen `PORT`")
		host := fs.String("host", "0.0.0.0", "listen `ADDRESS`")
		gateway := fs.String("gateway-url", envOr("GATEWAY_URL", "http://localhost:4000"), "gateway `URL` (default $GATEWAY_URL, then the local gateway)")
		su := fs.String("su-url", envOr("SU_URL", "http://localhost:4003"), "Scheduler Unit `URL` (default $SU_URL, then the local SU)")
		cu := fs.String("cu-url", envOr("CU_URL", "http://localhost:4004"), "Compute Unit `URL` (default $CU_URL, then the local CU)")
		mu := fs.String("mu-url", envOr("MU_URL", "http://localhost:4002"), "Messenger Unit `URL` (default $MU_URL, then the local MU)")
		address := fs.String("address", "", "node `ADDRESS` to report (default: the MU's signing address)")
		verbose := fs.Bool("v", false, "log informational messages too")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			a, err := hb.New(hb.Config{GatewayURL: *gateway, SUURL: *su, CUURL: *cu, MUURL: *mu, Address: *address, Logger: logger(*verbose)})
			if err != nil {
				return err
			}
			addr, err := a.Address(ctx)
			if err != nil {
				return fmt.Errorf("reading the node address from the MU at %s: %w\n  fix: start the MU first, or pass --mu-url or --address", *mu, err)
			}
			ln, err := listen(*host, *port)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "aonode hb: listening on http://%s, node address %s, gateway %s, SU %s, CU %s, MU %s\n",
				ln.Addr(), addr, *gateway, *su, *cu, *mu)
			return serveHTTP(ctx, ln, a.Handler())
		}
	},
}
