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
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/arweave"
	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/internal/httpx"
	"github.com/aonode/aonode/mu"
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
	Logger        *slog.Logger
	// Progress, when set, is told about slow first-start work (key generation).
	Progress func(msg string)
}

// Node is a running AO network.
type Node struct {
	Store   *arweave.Store
	Gateway *arweave.Gateway
	SU      *su.Server
	CU      *cu.Server
	MU      *mu.Server

	GatewayURL, SUURL, CUURL, MUURL string
	SUAddress, CUAddress, MUAddress string

	cancel  context.CancelFunc
	servers []*http.Server
	wg      sync.WaitGroup
	errc    chan error
}

// Start opens the data directory, starts every unit and returns once all of
// them accept requests.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
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
	if cfg.BlockInterval <= 0 {
		cfg.BlockInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
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
	runCtx, cancel := context.WithCancel(context.Background())
	n = &Node{cancel: cancel, errc: make(chan error, 4)}
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			n.Close()
		}
	}()

	suWallet, err := unitWallet(filepath.Join(cfg.DataDir, "wallets", "su.json"), cfg.Progress)
	if err != nil {
		return nil, err
	}
	cuWallet, err := unitWallet(filepath.Join(cfg.DataDir, "wallets", "cu.json"), cfg.Progress)
	if err != nil {
		return nil, err
	}
	muWallet, err := unitWallet(filepath.Join(cfg.DataDir, "wallets", "mu.json"), cfg.Progress)
	if err != nil {
		return nil, err
	}
	if n.Store, err = arweave.Open(ctx, filepath.Join(cfg.DataDir, "gateway")); err != nil {
		return nil, err
	}
	n.Gateway = arweave.NewGateway(n.Store, arweave.Config{Logger: cfg.Logger})
	n.GatewayURL = "http://" + hostPort(cfg.Host, gwLn)
	n.SUURL = "http://" + hostPort(cfg.Host, suLn)
	n.CUURL = "http://" + hostPort(cfg.Host, cuLn)
	n.MUURL = "http://" + hostPort(cfg.Host, muLn)

	n.SU, err = su.New(ctx, su.Config{
		Signer: suWallet, DataDir: filepath.Join(cfg.DataDir, "su"), Chain: storeChain{n.Store},
		URL: n.SUURL, Logger: cfg.Logger, HeightInterval: cfg.BlockInterval,
	})
	if err != nil {
		return nil, err
	}
	n.SUAddress = n.SU.Address()

	// The CU reaches the gateway and SUs over HTTP on loopback, as a CU on
	// another machine would; SUs are located through Scheduler-Location.
	gw := cu.NewHTTPGateway(n.GatewayURL)
	n.CU, err = cu.New(ctx, cu.Config{
		DataDir: filepath.Join(cfg.DataDir, "cu"), Scheduler: cu.NewHTTPScheduler("", gw), Gateway: gw,
		Signer: cuWallet, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.CUAddress = n.CU.Address()

	// The MU reaches the gateway, SUs and the CU over HTTP on loopback too. It
	// also cranks the boot result of each process it spawns (AOP-6), so that
	// what a process sends while booting is delivered.
	n.MU, err = mu.New(ctx, mu.Config{
		Signer: muWallet, DataDir: filepath.Join(cfg.DataDir, "mu"), GatewayURL: n.GatewayURL, CUURL: n.CUURL,
		SpawnPush: true, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
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
	n.serve(cuLn, n.CU.Handler())
	n.serve(muLn, n.MU.Handler())
	return n, nil
}

func (n *Node) serve(ln net.Listener, h http.Handler) {
	hs := httpx.NewServer(h)
	n.servers = append(n.servers, hs)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- err
		}
	}()
}

// Err reports a server that stopped on its own.
func (n *Node) Err() <-chan error { return n.errc }

// Close shuts down gracefully: servers stop accepting and finish the requests
// in flight, the SU publishes what its outbox holds, then the stores close.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, hs := range n.servers {
		errs = append(errs, hs.Shutdown(ctx))
	}
	if n.MU != nil {
		errs = append(errs, n.MU.Close())
	}
	if n.CU != nil {
		errs = append(errs, n.CU.Close())
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

func listen(host string, port int, unit string) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("%s port %d: %w", unit, port, err)
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

// unitWallet loads a unit's wallet, creating an Arweave key on first start.
func unitWallet(path string, progress func(string)) (*wallet.Wallet, error) {
	w, _, err := wallet.LoadOrCreate(path, wallet.Arweave, func(p string) {
		progress("creating unit wallet " + p + " (RSA-4096, first start only)")
	})
	return w, err
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
