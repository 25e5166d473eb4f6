package cu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// A cluster of CUs shares two things: the store (PostgreSQL: results, so any
// CU answers /result for a message another evaluated, and each process's
// newest checkpoint row) and the checkpoint files (S3-compatible object
// storage, Config.Checkpoints). A checkpoint file is named by the digest of
// its memory (memfile.go), so it is written once and never changes; it is
// uploaded before the row that names it is committed, and a CU restoring a
// process whose file it lacks downloads it first. So any CU continues any
// process from where another left it, without replaying its messages.
//
// A CU taken out of service is drained (POST /drain, or SIGTERM, whose Close
// checkpoints what changed): its live processes are checkpointed to shared
// storage and its instances closed, and GET /healthz answers 503 from then
// on, so a load balancer sends no more requests its way.

// cluster is a Server's shared-storage state.
type cluster struct {
	draining  atomic.Bool
	uploaded  sync.Map // digest → struct{}: files known to be in object storage
	uploads   atomic.Int64
	downloads atomic.Int64
}

// checkpointKey is where a checkpoint file is in object storage.
func checkpointKey(sha string) string { return "checkpoints/" + sha + ".mem" }

// uploadCheckpoint copies the checkpoint file sha to object storage, unless
// it is there already (no-op without object storage).
func (s *Server) uploadCheckpoint(ctx context.Context, sha string) error {
	obj := s.cfg.Checkpoints
	if obj == nil {
		return nil
	}
	if _, ok := s.cl.uploaded.Load(sha); ok {
		return nil
	}
	ctx = context.WithoutCancel(ctx) // a half-done upload helps nobody
	if ok, err := obj.Has(ctx, checkpointKey(sha)); err == nil && ok {
		s.cl.uploaded.Store(sha, struct{}{})
		return nil
	}
	b, err := os.ReadFile(s.checkpointPath(sha))
	if err != nil {
		return fmt.Errorf("cu: upload checkpoint: %w", err)
	}
	if err := obj.Put(ctx, checkpointKey(sha), b); err != nil {
		return fmt.Errorf("cu: upload checkpoint: %w", err)
	}
	s.cl.uploaded.Store(sha, struct{}{})
	s.cl.uploads.Add(1)
	return nil
}

// fetchCheckpoint makes sure the file of checkpoint st is on local disk,
// downloading it from object storage when another CU wrote it. The file is
// checked against its digest when it is read (readMemoryFile).
func (s *Server) fetchCheckpoint(ctx context.Context, st checkpointState) error {
	path := s.checkpointPath(st.sha)
	if _, err := os.Stat(path); err == nil || s.cfg.Checkpoints == nil {
		return nil
	}
	// A file is at most its memory plus its layout: the compression never
	// grows a page by much. The bound keeps a damaged object from filling
	// memory.
	b, err := s.cfg.Checkpoints.Get(ctx, checkpointKey(st.sha), int64(st.Size)+int64(st.Size)/8+1<<20)
	if err != nil {
		return fmt.Errorf("cu: download checkpoint %s: %w", st.sha, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cu: download checkpoint: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return fmt.Errorf("cu: download checkpoint: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("cu: download checkpoint: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cu: download checkpoint: %w", err)
	}
	s.cl.uploaded.Store(st.sha, struct{}{})
	s.cl.downloads.Add(1)
	return nil
}

// Drain checkpoints every live process (to shared storage when configured)
// and closes its instance, so that other CUs continue them without replay;
// from then on Healthz reports the CU draining. It returns how many
// processes it checkpointed. Requests that still arrive are served (their
// processes restored from the checkpoints), so nothing is refused meanwhile.
func (s *Server) Drain(ctx context.Context) (int, error) {
	s.cl.draining.Store(true)
	s.mu.Lock()
	procs := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	n := 0
	var errs []error
	for _, p := range procs {
		p.mu.Lock()
		if p.inst != nil {
			if err := s.checkpoint(ctx, p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.info.pid, err))
				p.mu.Unlock()
				continue
			}
			p.inst.Close(ctx)
			p.inst = nil
			n++
			s.mu.Lock()
			p.size = 0
			s.mu.Unlock()
		}
		p.mu.Unlock()
	}
	return n, errors.Join(errs...)
}

// Healthz checks that the CU can serve: not draining, its store and its
// object storage answer.
func (s *Server) Healthz(ctx context.Context) error {
	if s.cl.draining.Load() {
		return errors.New("draining")
	}
	if err := s.store.d.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if s.cfg.Checkpoints != nil {
		if err := s.cfg.Checkpoints.Ping(ctx); err != nil {
			return fmt.Errorf("checkpoints: %w", err)
		}
	}
	return nil
}

// clusterRoutes adds GET /healthz and POST /drain.
func (s *Server) clusterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Healthz(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.Drain(context.WithoutCancel(r.Context()))
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "checkpointed": n})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"checkpointed": n})
	})
}

func (s *Server) writeClusterMetrics(w io.Writer) {
	fmt.Fprintf(w, "# HELP ao_cu_checkpoint_uploads_total Checkpoint files copied to object storage.\n# TYPE ao_cu_checkpoint_uploads_total counter\nao_cu_checkpoint_uploads_total %d\n", s.cl.uploads.Load())
	fmt.Fprintf(w, "# HELP ao_cu_checkpoint_downloads_total Checkpoint files another CU wrote, fetched from object storage.\n# TYPE ao_cu_checkpoint_downloads_total counter\nao_cu_checkpoint_downloads_total %d\n", s.cl.downloads.Load())
	d := 0
	if s.cl.draining.Load() {
		d = 1
	}
	fmt.Fprintf(w, "# HELP ao_cu_draining 1 once the CU was drained.\n# TYPE ao_cu_draining gauge\nao_cu_draining %d\n", d)
}
