package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/aonode/aonode/node"
)

var runCmd = &command{
	name:    "run",
	summary: "run a whole AO network in one process",
	help: `Starts the gateway and permanent store (port 4000), the Messenger Unit (4002), the
Scheduler Unit (4003) and the Compute Unit (4004), as the old ao-localnet did, with all data under --data. Unit wallets are created on first start
and kept. The SU publishes its Scheduler-Location record, so clients find it through the
gateway. Prints the URLs, the scheduler address and the environment lines for clients.
SIGINT or SIGTERM shuts down gracefully: requests in flight finish and nothing
acknowledged is lost.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		data := fs.String("data", ".aonode", "data `DIR`")
		host := fs.String("host", "127.0.0.1", "listen `ADDRESS` (0.0.0.0 to serve other machines)")
		gwPort := fs.Int("gateway-port", 4000, "gateway `PORT`")
		suPort := fs.Int("su-port", 4003, "Scheduler Unit `PORT`")
		cuPort := fs.Int("cu-port", 4004, "Compute Unit `PORT`")
		muPort := fs.Int("mu-port", 4002, "Messenger Unit `PORT`")
		interval := fs.Duration("block-interval", time.Second, "cut a block this often when there are new items")
		verbose := fs.Bool("v", false, "log informational messages too")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			start := time.Now()
			n, err := node.Start(ctx, node.Config{
				DataDir: *data, Host: *host, GatewayPort: *gwPort, SUPort: *suPort, CUPort: *cuPort, MUPort: *muPort, BlockInterval: *interval,
				Logger: logger(*verbose), Progress: func(msg string) { fmt.Fprintln(stderr, "aonode:", msg) },
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, `aonode is running (data in %s, ready in %s)

  gateway   %s
  MU        %s    MU address %s
  SU        %s    scheduler address %s
  CU        %s

aos trusts messages from other processes only when the MU address is an Authority
of the process: aonode spawn adds it; with aoconnect, add the tag
  { name: "Authority", value: "%s" }
and with the aos CLI (legacy mode; MODULE from 'aonode module publish'):
  aos NAME --legacy --module MODULE --gateway-url %s --mu-url %s --cu-url %s \
    --scheduler %s --tag-name Authority --tag-value %s

Environment for clients (aoconnect, aonode):
  export GATEWAY_URL=%s
  export MU_URL=%s
  export CU_URL=%s
  export SU_URL=%s

Press Ctrl-C to stop.
`, *data, time.Since(start).Round(time.Millisecond), n.GatewayURL, n.MUURL, n.MUAddress, n.SUURL, n.SUAddress, n.CUURL,
				n.MUAddress, n.GatewayURL, n.MUURL, n.CUURL, n.SUAddress, n.MUAddress,
				n.GatewayURL, n.MUURL, n.CUURL, n.SUURL)
			select {
			case <-ctx.Done():
				fmt.Fprintln(stderr, "aonode: shutting down")
			case err = <-n.Err():
			}
			if cerr := n.Close(); err == nil {
				err = cerr
			}
			return err
		}
	},
}

func init() { root.subs = append(root.subs, runCmd) }
