// Package node wires AO units into one process for `aonode run`: the gateway
// and permanent store, the Scheduler Unit and, as they land, the Compute and
// Messenger Units. Units inside one process call each other directly where
// that saves work (the SU writes to the store without HTTP), while each unit
// still serves its own HTTP API, which stays the contract.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/arweave"
	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/explorer"
	"github.com/aonode/aonode/hb"
	"github.com/aonode/aonode/internal/httpx"
	"github.com/aonode/aonode/mu"
	"github.com/aonode/aonode/placement"
	"github.com/aonode/aonode/router"
	"github.com/aonode/aonode/su"
	"github.com/aonode/aonode/wallet"
)

// Config configures a node. Zero ports take the defaults of the old
// ao-localnet: gateway 4000, MU 4002, SU 4003, CU 4004.
type Config struct {
	DataDir       string // everything lives here (default ./.aonode)
	Host          string // listen address (default 127.0.0.1)
	GatewayPort   int
	SUPort        int
	CUPort        int
	MUPort        int
	BlockInterval time.Duration // default 1 s
	// MemoryBudget bounds the CU's live instances (bytes; 0: the CU's
	// default, a quarter of the machine's memory).
	MemoryBudget int64
	// UnitWallets is the kind of key made for a unit on its first start
	// (wallet.Ed25519, the default, or wallet.Arweave); existing unit
	// wallets are kept whatever their kind. Ed25519 (ANS-104 type 2) signs
	// in microseconds where RSA-4096 takes milliseconds, and every message
	// costs the units two signatures or more.
	UnitWallets string
	Logger      *slog.Logger
	// Progress, when set, is told about slow first-start work (key generation).
	Progress func(msg string)

	// HBPort serves the AO-Core surface of today's aos and aoconnect mainnet
	// mode (package hb); 0: not served (aonode run defaults to 8734).
	HBPort int
	// StrictScheduler refuses processes naming a scheduler this node does not
	// serve, rather than scheduling them on its SU (see hb.Locations).
	StrictScheduler bool
	// ExplorerPort serves the web explorer (package explorer); 0: not
	// served (aonode run defaults to 4005).
	ExplorerPort int

	// CUs is how many Compute Units to run (default 1), on consecutive ports
	// from CUPort (skipping the node's other ports, so 4004, 4006, 4007 with
	// the defaults), each with its own wallet (wallets/cu.json, cu-2.json, ...)
	// and data (cu, cu-2, ...). With more than one, the MU places each
	// process on one of them (package placement), and a router (package
	// router) on RouterPort (default 4010) is the one CU URL for clients.
	CUs        int
	RouterPort int
	// CUPorts, when it has CUs entries, are the CUs' ports instead of
	// consecutive ones (tests take free ports).
	CUPorts []int
	// CUPrices are the CUs' prices, by CU (missing: free). Any price needs
	// Ledger, the token process whose Transfers to a CU's wallet fund
	// balances there (see cu.Config).
	CUPrices []cu.Prices
	Ledger   string
}

// Node is a running AO network.
type Node struct {
	Store   *arweave.Store
	Gateway *arweave.Gateway
	SU      *su.Server
	CU      *cu.Server   // the first CU
	CUs     []*cu.Server // every CU, CU first
	MU      *mu.Server
	Router  *router.Router // nil with one CU
	HB      *hb.Adapter    // nil unless Config.HBPort

	// CUURL is the URL clients use for compute: the CU, or with several CUs
	// the router in front of them. CUURLs are the CUs themselves.
	GatewayURL, SUURL, CUURL, MUURL string
	CUURLs                          []string
	CUAddresses                     []string
	CUPrices                        []cu.Prices // as configured, by CU
	SUAddress, CUAddress, MUAddress string

	HBURL string // the AO-Core surface; "" unless Config.HBPort
	// ExplorerURL is the web explorer; "" unless Config.ExplorerPort.
	ExplorerURL string

	cancel  context.CancelFunc
	servers []*http.Server
	// reqCtx is every request's base context, cancelled when a stop has
	// waited ShutdownGrace for requests in flight.
	reqCtx    context.Context
	reqCancel context.CancelFunc
	cuServers []*http.Server // by CU, for StopCU
	cuStopped []bool
	wg        sync.WaitGroup
	errc      chan error
}

// Start opens the data directory, starts every unit and returns once all of
// them accept requests.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = ".aonode"
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.GatewayPort == 0 {
		cfg.GatewayPort = 4000
	}
	if cfg.SUPort == 0 {
		cfg.SUPort = 4003
	}
	if cfg.CUPort == 0 {
		cfg.CUPort = 4004
	}
	if cfg.MUPort == 0 {
		cfg.MUPort = 4002
	}
	if cfg.CUs <= 0 {
		cfg.CUs = 1
	}
	if cfg.RouterPort == 0 {
		cfg.RouterPort = 4010
	}
	if cfg.BlockInterval <= 0 {
		cfg.BlockInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
	}
	switch cfg.UnitWallets {
	case "":
		cfg.UnitWallets = wallet.Ed25519
	case wallet.Ed25519, wallet.Arweave:
	default:
		return nil, fmt.Errorf("unit wallets: unknown kind %q (want %s or %s)", cfg.UnitWallets, wallet.Ed25519, wallet.Arweave)
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	// Listen first: a taken port fails before anything is created.
	var lns []net.Listener
	for _, l := range []struct {
		port int
		unit string
	}{{cfg.GatewayPort, "gateway"}, {cfg.SUPort, "SU"}, {cfg.CUPort, "CU"}, {cfg.MUPort, "MU"}} {
		ln, err := listen(cfg.Host, l.port, l.unit)
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	gwLn, suLn, cuLn, muLn := lns[0], lns[1], lns[2], lns[3]
	cuLns := []net.Listener{cuLn}
	var routerLn net.Listener
	closeExtra := func() {
		for _, ln := range cuLns[1:] {
			ln.Close()
		}
		if routerLn != nil {
			routerLn.Close()
		}
	}
	ports := cuPorts(cfg)
	for i := 1; i < cfg.CUs; i++ {
		port := ports[i]
		ln, err := listen(cfg.Host, port, fmt.Sprintf("CU %d", i+1))
		if err != nil {
			closeExtra()
			for _, ln := range lns {
				ln.Close()
			}
			return nil, err
		}
		cuLns = append(cuLns, ln)
	}
	if cfg.CUs > 1 {
		ln, err := listen(cfg.Host, cfg.RouterPort, "router (--router-port)")
		if err != nil {
			closeExtra()
			for _, ln := range lns {
				ln.Close()
			}
			return nil, err
		}
		routerLn = ln
	}
	if cfg.HBPort != 0 {
		ln, err := listen(cfg.Host, cfg.HBPort, "AO-Core (--hb-port)")
		if err != nil {
			closeExtra()
			for _, ln := range lns {
				ln.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	var exLn net.Listener
	if cfg.ExplorerPort != 0 {
		ln, err := listen(cfg.Host, cfg.ExplorerPort, "explorer (--explorer-port)")
		if err != nil {
			closeExtra()
			for _, ln := range lns {
				ln.Close()
			}
			return nil, err
		}
		exLn = ln
	}
	started := time.Now()
	runCtx, cancel := context.WithCancel(context.Background())
	n := &Node{cancel: cancel, errc: make(chan error, 6+cfg.CUs)}
	n.reqCtx, n.reqCancel = context.WithCancel(context.Background())
	// The cleanup closes n itself, not a named result: every failure below
	// returns nil, and closing that nil Node panicked instead of reporting
	// the error.
	ok := false
	defer func() {
		if !ok {
			for _, ln := range lns {
				ln.Close()
			}
			closeExtra()
			if exLn != nil {
				exLn.Close()
			}
			n.Close()
		}
	}()

	suWallet, err := unitWallet(filepath.Join(cfg.DataDir, "wallets", "su.json"), cfg.UnitWallets, cfg.Progress)
	if err != nil {
		return nil, err
	}
	cuWallet, err := unitWallet(filepath.Join(cfg.DataDir, "wallets", "cu.json"), cfg.UnitWallets, cfg.Progress)
	if err != nil {
		return nil, err
	}
	muWallet, err := unitWallet(filepath.Join(cfg.DataDir, "wallets", "mu.json"), cfg.UnitWallets, cfg.Progress)
	if err != nil {
		return nil, err
	}
	storeDir := filepath.Join(cfg.DataDir, "gateway")
	if n.Store, err = arweave.Open(ctx, storeDir); err != nil {
		return nil, fmt.Errorf("opening the gateway store %[1]s: %[2]w\n"+
			"  fix: restore %[1]s from a backup, or move %[3]s away to start with an empty store (every process is lost)",
			filepath.Join(storeDir, "store.db"), err, storeDir)
	}
	n.Gateway = arweave.NewGateway(n.Store, arweave.Config{Logger: cfg.Logger})
	n.GatewayURL = "http://" + hostPort(cfg.Host, gwLn)
	n.SUURL = "http://" + hostPort(cfg.Host, suLn)
	n.CUURL = "http://" + hostPort(cfg.Host, cuLn) // the router's with several CUs
	n.MUURL = "http://" + hostPort(cfg.Host, muLn)

	n.SU, err = su.New(ctx, su.Config{
		Signer: suWallet, DataDir: filepath.Join(cfg.DataDir, "su"), Chain: storeChain{n.Store},
		URL: n.SUURL, Logger: cfg.Logger, HeightInterval: cfg.BlockInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the SU (data in %s): %w", filepath.Join(cfg.DataDir, "su"), err)
	}
	n.SUAddress = n.SU.Address()
	// The CU and MU find this SU for processes naming the SU, the MU (the
	// AO-Core node address) or, unless strict, an unknown scheduler.
	locs := hb.NewLocations(n.SUURL, []string{n.SUAddress, muWallet.Address()}, cfg.StrictScheduler, cfg.Logger)

	// The CU reaches the gateway and SUs over HTTP on loopback, as a CU on
	// another machine would; SUs are located through Scheduler-Location.
	gw := cu.NewHTTPGateway(n.GatewayURL)
	sched := cu.NewHTTPScheduler("", locs.CU(gw))
	// A process this node's SU has just scheduled is found there before the
	// SU has published it to the gateway.
	sched.Known = []string{n.SUURL}
	for i, ln := range cuLns {
		name, dir := "cu.json", "cu"
		if i > 0 {
			name, dir = fmt.Sprintf("cu-%d.json", i+1), fmt.Sprintf("cu-%d", i+1)
		}
		w := cuWallet
		if i > 0 {
			if w, err = unitWallet(filepath.Join(cfg.DataDir, "wallets", name), cfg.UnitWallets, cfg.Progress); err != nil {
				return nil, err
			}
		}
		ccfg := cu.Config{
			DataDir: filepath.Join(cfg.DataDir, dir), Scheduler: sched, Gateway: gw,
			Signer: w, Logger: cfg.Logger, MemoryBudget: cfg.MemoryBudget,
		}
		if i < len(cfg.CUPrices) && cfg.CUPrices[i].On() {
			ccfg.Prices, ccfg.Ledger = cfg.CUPrices[i], cfg.Ledger
		}
		c, err := cu.New(ctx, ccfg)
		if err != nil {
			return nil, fmt.Errorf("starting the CU (data in %s): %w", filepath.Join(cfg.DataDir, dir), err)
		}
		n.CUs = append(n.CUs, c)
		n.CUURLs = append(n.CUURLs, "http://"+hostPort(cfg.Host, ln))
		n.CUAddresses = append(n.CUAddresses, c.Address())
	}
	n.CU, n.CUAddress = n.CUs[0], n.CUAddresses[0]
	n.CUPrices = cfg.CUPrices

	// With several CUs the MU and the router share one placement table: the
	// cheapest healthy CU per process, sticky, with failover.
	mcfg := mu.Config{
		Signer: muWallet, DataDir: filepath.Join(cfg.DataDir, "mu"), GatewayURL: n.GatewayURL, CUURL: n.CUURL,
		Gateway: locs.MU(mu.NewHTTPGateway(n.GatewayURL)), SpawnPush: true, Logger: cfg.Logger,
	}
	var placer *placement.Placer
	if len(n.CUURLs) > 1 {
		if placer, err = placement.New(placement.Config{URLs: n.CUURLs, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
		mcfg.Placement = placer
		if n.Router, err = router.New(router.Config{Placer: placer, DataDir: filepath.Join(cfg.DataDir, "router"), Logger: cfg.Logger}); err != nil {
			return nil, err
		}
		n.CUURL = "http://" + hostPort(cfg.Host, routerLn)
		mcfg.CUURL = ""
	}

	// The MU reaches the gateway, SUs and the CU over HTTP on loopback too. It
	// also cranks the boot result of each process it spawns (AOP-6), so that
	// what a process sends while booting is delivered.
	n.MU, err = mu.New(ctx, mcfg)
	if err != nil {
		return nil, fmt.Errorf("starting the MU (data in %s): %w", filepath.Join(cfg.DataDir, "mu"), err)
	}
	n.MUAddress = n.MU.Address()

	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.Gateway.Run(runCtx) }()
	go func() {
		defer n.wg.Done()
		n.Store.MineEvery(runCtx, cfg.BlockInterval, func(err error) { cfg.Logger.Error("cutting a block failed", "err", err) })
	}()
	n.serve(gwLn, n.Gateway.Handler())
	n.serve(suLn, n.SU.Handler())
	for i, ln := range cuLns {
		n.cuServers = append(n.cuServers, n.serve(ln, n.CUs[i].Handler()))
	}
	if n.Router != nil {
		n.serve(routerLn, n.Router.Handler())
	}
	n.serve(muLn, n.MU.Handler())
	if placer != nil {
		// Now that the CUs serve, the first choices can know them.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		placer.Refresh(rctx)
		cancel()
		n.wg.Go(func() { placer.Run(runCtx) })
	}
	if len(lns) > 4 {
		n.HBURL = "http://" + hostPort(cfg.Host, lns[4])
		if n.HB, err = hb.New(hb.Config{GatewayURL: n.GatewayURL, SUURL: n.SUURL, CUURL: n.CUURL, MUURL: n.MUURL,
			Address: n.MUAddress, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
		// The node address is a scheduler this node serves: say where.
		loc, err := hb.LocationRecord(muWallet, n.SUURL)
		if err != nil {
			return nil, err
		}
		if err := (storeChain{n.Store}).Upload(ctx, loc.Bytes()); err != nil {
			return nil, fmt.Errorf("storing the node address's Scheduler-Location: %w", err)
		}
		n.serve(lns[4], n.HB.Handler())
	}
	if exLn != nil {
		ex, err := explorer.New(explorer.Config{GatewayURL: n.GatewayURL, SUURL: n.SUURL, CUURL: n.CUURL, MUURL: n.MUURL,
			HBURL: n.HBURL, Started: started})
		if err != nil {
			return nil, err
		}
		n.ExplorerURL = "http://" + hostPort(cfg.Host, exLn)
		n.serve(exLn, ex.Handler())
	}
	ok = true
	return n, nil
}

func (n *Node) serve(ln net.Listener, h http.Handler) *http.Server {
	hs := httpx.NewServer(h)
	hs.BaseContext = func(net.Listener) context.Context { return n.reqCtx }
	n.servers = append(n.servers, hs)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- err
		}
	}()
	return hs
}

// StopCU stops CU i (0 is the first) at once, as a crash looks to its
// peers: its connections drop and its port refuses; the others and the MU
// carry on. For tests and demonstrations of failover.
func (n *Node) StopCU(i int) error {
	if i < 0 || i >= len(n.CUs) || i >= len(n.cuServers) {
		return fmt.Errorf("node: no CU %d", i)
	}
	if n.cuStopped == nil {
		n.cuStopped = make([]bool, len(n.CUs))
	}
	if n.cuStopped[i] {
		return nil
	}
	n.cuStopped[i] = true
	err := n.cuServers[i].Close()
	return errors.Join(err, n.CUs[i].Close())
}

// Err reports a server that stopped on its own.
func (n *Node) Err() <-chan error { return n.errc }

// Close shuts down gracefully: servers stop accepting and finish the requests
// in flight, the SU publishes what its outbox holds, then the stores close.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if len(n.servers) > 0 {
		errs = append(errs, httpx.Shutdown(ctx, n.reqCancel, n.servers...))
	}
	n.reqCancel()
	if n.MU != nil {
		errs = append(errs, n.MU.Close())
	}
	for i, c := range n.CUs {
		if i < len(n.cuStopped) && n.cuStopped[i] {
			continue
		}
		errs = append(errs, c.Close())
	}
	if n.SU != nil {
		if err := n.SU.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("publishing the SU outbox: %w", err))
		}
		errs = append(errs, n.SU.Close())
	}
	n.cancel()
	n.wg.Wait()
	if n.Store != nil {
		errs = append(errs, n.Store.Close())
	}
	return errors.Join(errs...)
}

// cuPorts are the CUs' ports: cfg.CUPorts when it names them all, else
// CUPort and the next ports after it that no other unit of this node uses
// (the explorer's default 4005 sits between).
func cuPorts(cfg Config) []int {
	if len(cfg.CUPorts) == cfg.CUs {
		return cfg.CUPorts
	}
	taken := map[int]bool{cfg.GatewayPort: true, cfg.SUPort: true, cfg.CUPort: true, cfg.MUPort: true,
		cfg.HBPort: true, cfg.ExplorerPort: true, cfg.RouterPort: true}
	out := []int{cfg.CUPort}
	for port := cfg.CUPort; len(out) < cfg.CUs; {
		for port++; taken[port]; port++ {
		}
		out = append(out, port)
	}
	return out
}

func listen(host string, port int, unit string) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		fix := ""
		if errors.Is(err, syscall.EADDRINUSE) {
			fix = fmt.Sprintf("\n  fix: another program (another aonode run?) has port %d: stop it, or give this node "+
				"other ports with --gateway-port, --mu-port, --su-port and --cu-port", port)
		}
		return nil, fmt.Errorf("%s port %d: %w%s", unit, port, err, fix)
	}
	return ln, nil
}

// hostPort names the listener's address as clients should dial it.
func hostPort(host string, ln net.Listener) string {
	port := ln.Addr().(*net.TCPAddr).Port
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// unitWallet loads a unit's wallet, creating a key of kind on first start.
// A file that is there but unreadable is never replaced: the unit's address
// (the SU's scheduler address, the MU's Authority) would change under every
// process that names it, so the error says what the user can do instead.
func unitWallet(path, kind string, progress func(string)) (*wallet.Wallet, error) {
	w, _, err := wallet.LoadOrCreate(path, kind, func(p string) {
		if kind == wallet.Arweave {
			progress("creating unit wallet " + p + " (RSA-4096, first start only)")
		}
	})
	if err != nil {
		return nil, fmt.Errorf("unit wallet %[1]s: %[2]w\n"+
			"  fix: restore %[1]s from a backup, or delete it to create a new key "+
			"(the unit's address changes: processes that name the old one no longer reach it)", path, err)
	}
	return w, nil
}

// checkDataDir refuses a data directory that is a file (or under one), with
// the fix, before anything is created.
func checkDataDir(dir string) error {
	// The nearest path that exists, from dir up, must be a directory.
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("data directory %s: %s is a file, not a directory\n"+
					"  fix: pass --data a directory (it is created if missing)", dir, d)
			}
			break
		}
		if parent := filepath.Dir(d); parent == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w\n  fix: pass --data a directory you can write to", err)
	}
	return nil
}

// storeChain lets the SU write to the store in the same process, without HTTP.
type storeChain struct{ s *arweave.Store }

func (c storeChain) Height(context.Context) (int64, error) { return c.s.Current().Height, nil }

func (c storeChain) Upload(ctx context.Context, item []byte) error {
	d, err := ans104.Parse(item)
	if err != nil {
		return err
	}
	_, err = c.s.Put(ctx, d)
	return err
}
