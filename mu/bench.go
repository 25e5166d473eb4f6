package mu

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bytes"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/arweave"
	"github.com/aonode/aonode/su"
	"github.com/aonode/aonode/wallet"
)

// BenchConfig configures RunBench.
type BenchConfig struct {
	Duration    time.Duration // per row
	Wallets     []string      // MU wallet kinds
	Concurrency int           // ping-pongs in flight for the throughput row
	// Postgres, a postgres:// URL, adds rows with the queue on PostgreSQL
	// (in a scratch schema, dropped after), beside those on SQLite: the cost
	// of a shared queue per message.
	Postgres string
	Log      io.Writer
}

// BenchRow is one measured MU wallet kind.
type BenchRow struct {
	Wallet         string
	Queue          string // "SQLite" or "PostgreSQL"
	P50, P99       time.Duration
	RoundTrips     int
	MessagesPerSec float64
}

// pongCU is a CU for benchmarks: a Ping to process a yields a Pong to b; the
// Pong's result is empty. It signals when b's result for a Pong is asked for:
// the end of the round trip through the MU.
type pongCU struct {
	suURL  string
	a, b   string
	client *http.Client
	mu     sync.Mutex
	wait   map[string]chan struct{}
	n      atomic.Int64
}

func (c *pongCU) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/result/")
	pid := r.URL.Query().Get("process-id")
	empty := `{"Messages":[],"Spawns":[],"Assignments":[],"Output":""}`
	if pid == id || !strings.HasPrefix(r.URL.Path, "/result/") {
		io.WriteString(w, empty)
		return
	}
	resp, err := c.client.Get(c.suURL + "/" + id + "?process-id=" + pid)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	var m struct {
		Message struct {
			ID   string `json:"id"`
			Tags []Tag  `json:"tags"`
		} `json:"message"`
	}
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	if pid == c.b {
		pf, _ := tagValue(m.Message.Tags, "Pushed-For")
		c.mu.Lock()
		if ch := c.wait[pf]; ch != nil {
			close(ch)
			delete(c.wait, pf)
		}
		c.mu.Unlock()
		io.WriteString(w, empty)
		return
	}
	n := c.n.Add(1)
	ref := fmt.Sprintf("%032d", n)
	out := map[string]any{"Messages": []any{map[string]any{"Target": c.b, "Anchor": ref, "Data": "pong",
		"Tags": []Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Message"},
			{Name: "Reference", Value: fmt.Sprint(n)}, {Name: "Action", Value: "Pong"}}}}}
	json.NewEncoder(w).Encode(out)
}

func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), func() { hs.Close() }, nil
}

// RunBench measures ping-pong round trips through the MU (user message → SU
// → CU result → pushed Pong → SU → CU), against a real SU and gateway on
// loopback and a scripted CU, for each MU wallet kind.
func RunBench(ctx context.Context, cfg BenchConfig, out io.Writer) error {
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	dir, err := os.MkdirTemp("", "aonode-mu-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	st, err := arweave.Open(ctx, dir+"/gateway")
	if err != nil {
		return err
	}
	closers = append(closers, func() { st.Close() })
	gwURL, stop, err := serveLoopback(arweave.NewGateway(st, arweave.Config{}).Handler())
	if err != nil {
		return err
	}
	closers = append(closers, stop)
	var suH atomic.Value
	suURL, stop, err := serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { suH.Load().(http.Handler).ServeHTTP(w, r) }))
	if err != nil {
		return err
	}
	closers = append(closers, stop)
	suW, err := wallet.Generate(wallet.Ed25519)
	if err != nil {
		return err
	}
	s, err := su.New(ctx, su.Config{Signer: suW, DataDir: dir + "/su", Chain: su.NewHTTPChain(gwURL), URL: suURL})
	if err != nil {
		return err
	}
	closers = append(closers, func() { s.Close() })
	suH.Store(s.Handler())
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = s.Flush(fctx)
	cancel()
	if err != nil {
		return err
	}
	user, err := wallet.Generate(wallet.Ed25519)
	if err != nil {
		return err
	}
	queues := []string{""}
	if cfg.Postgres != "" {
		dsn, drop, err := benchSchema(ctx, cfg.Postgres)
		if err != nil {
			return err
		}
		defer drop()
		queues = append(queues, dsn)
	}
	fmt.Fprintf(out, "MU ping-pong through a real SU (Ed25519 SU wallet, SQLite) and a scripted CU, loopback HTTP\n")
	fmt.Fprintf(out, "%-10s %-10s %10s %10s %12s %14s\n", "MU wallet", "queue", "RTT p50", "RTT p99", "round trips", "messages/s")
	for _, kind := range cfg.Wallets {
		for _, q := range queues {
			fmt.Fprintf(cfg.Log, "bench mu: %s wallet, queue %q ...\n", kind, q)
			row, err := benchOne(ctx, cfg, kind, q, dir, gwURL, suURL, s.Address(), user)
			if err != nil {
				return fmt.Errorf("bench %s: %w", kind, err)
			}
			fmt.Fprintf(out, "%-10s %-10s %10s %10s %12d %14.1f\n", row.Wallet, row.Queue, row.P50.Round(10*time.Microsecond), row.P99.Round(10*time.Microsecond), row.RoundTrips, row.MessagesPerSec)
		}
	}
	return nil
}

// benchSchema creates a scratch schema on PostgreSQL and returns a URL
// selecting it and a function that drops it.
func benchSchema(ctx context.Context, base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("mu_bench_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("bench: postgres: %w", err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name, func() {
		db.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE")
		db.Close()
	}, nil
}

func benchOne(ctx context.Context, cfg BenchConfig, kind, database, dir, gwURL, suURL, suAddr string, user *wallet.Wallet) (BenchRow, error) {
	row := BenchRow{Wallet: kind, Queue: "SQLite"}
	if database != "" {
		row.Queue = "PostgreSQL"
	}
	muW, err := wallet.Generate(kind)
	if err != nil {
		return row, err
	}
	cu := &pongCU{suURL: suURL, client: &http.Client{Timeout: 30 * time.Second}, wait: map[string]chan struct{}{}}
	cuURL, stopCU, err := serveLoopback(cu)
	if err != nil {
		return row, err
	}
	defer stopCU()
	m, err := New(ctx, Config{Signer: muW, DataDir: dir + "/mu-" + kind + "-" + row.Queue, GatewayURL: gwURL, CUURL: cuURL, Database: database})
	if err != nil {
		return row, err
	}
	defer m.Close()
	muURL, stopMU, err := serveLoopback(m.Handler())
	if err != nil {
		return row, err
	}
	defer stopMU()
	client := &http.Client{Timeout: 60 * time.Second}
	post := func(d *ans104.DataItem) error {
		resp, err := client.Post(muURL+"/", "application/octet-stream", bytes.NewReader(d.Bytes()))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("POST /: %d %s", resp.StatusCode, b)
		}
		return nil
	}
	spawn := func(name string) (string, error) {
		d, err := ans104.Sign(user, []byte("1984"), ans104.Options{Tags: []Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"},
			{Name: "Type", Value: "Process"}, {Name: "Module", Value: ans104.Address([]byte("bench-module"))}, {Name: "Scheduler", Value: suAddr}, {Name: "Name", Value: name}}})
		if err != nil {
			return "", err
		}
		return d.ID(), post(d)
	}
	if cu.a, err = spawn("ping-" + kind); err != nil {
		return row, err
	}
	if cu.b, err = spawn("pong-" + kind); err != nil {
		return row, err
	}
	target, _ := ans104.DecodeID(cu.a)
	roundTrip := func() (time.Duration, error) {
		var anchor [32]byte
		rand.Read(anchor[:]) // Ed25519 signatures are deterministic: make every ping a new item
		d, err := ans104.Sign(user, []byte("ping"), ans104.Options{Target: target[:], Anchor: anchor[:], Tags: []Tag{{Name: "Data-Protocol", Value: "ao"},
			{Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Message"}, {Name: "Action", Value: "Ping"}}})
		if err != nil {
			return 0, err
		}
		ch := make(chan struct{})
		cu.mu.Lock()
		cu.wait[d.ID()] = ch
		cu.mu.Unlock()
		start := time.Now()
		if err := post(d); err != nil {
			return 0, err
		}
		select {
		case <-ch:
			return time.Since(start), nil
		case <-time.After(60 * time.Second):
			rows, _, _ := m.Trace(ctx, TraceQuery{ID: d.ID(), Page: 1, PageSize: 20})
			return 0, fmt.Errorf("round trip %s never completed; trace: %+v", d.ID(), rows)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	// Latency: one round trip at a time.
	var lat []time.Duration
	for end := time.Now().Add(cfg.Duration); time.Now().Before(end); {
		d, err := roundTrip()
		if err != nil {
			return row, err
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	row.P50, row.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	// Throughput: Concurrency round trips in flight.
	var n atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for time.Now().Before(end) {
				if _, err := roundTrip(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return row, err
	}
	row.RoundTrips = int(n.Load()) + len(lat)
	// Each round trip moves two messages through the MU: the user's Ping and the pushed Pong.
	row.MessagesPerSec = float64(2*n.Load()) / time.Since(start).Seconds()
	return row, nil
}
