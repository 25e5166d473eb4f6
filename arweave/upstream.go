package arweave

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aonode/aonode/internal/sqldb"
)

// remote is a remote gateway (reads) or bundler (uploads).
type remote struct {
	base   string
	client *http.Client
}

func newRemote(base string) *remote {
	return &remote{base: strings.TrimRight(base, "/"), client: &http.Client{Timeout: 60 * time.Second}}
}

// fetchData reads /raw/{id} from the upstream gateway, bounded by max bytes.
func (r *remote) fetchData(ctx context.Context, id string, max int64) (contentType string, data []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/raw/"+id, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("upstream %s: %w", r.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", nil, ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("upstream %s: /raw/%s: %s", r.base, id, resp.Status)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return "", nil, fmt.Errorf("upstream %s: %w", r.base, err)
	}
	if int64(len(data)) > max {
		return "", nil, fmt.Errorf("upstream %s: /raw/%s is larger than %d bytes", r.base, id, max)
	}
	return resp.Header.Get("Content-Type"), data, nil
}

// graphql forwards a GraphQL request body and returns the answer's body.
func (r *remote) graphql(ctx context.Context, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", r.base, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upstream %s: graphql: %s", r.base, resp.Status)
	}
	return out, nil
}

// upload posts a data item to a bundler's /tx/arweave.
func (r *remote) upload(ctx context.Context, raw []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/tx/arweave", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("bundler %s answered %s", r.base, resp.Status)
	}
	return nil
}

// cachedData returns data read earlier from the upstream gateway.
func (s *Store) cachedData(ctx context.Context, id string) (string, []byte, error) {
	var ct string
	var data []byte
	err := s.d.QueryRow(ctx, `SELECT content_type, data FROM upstream_cache WHERE id = ?`, id).Scan(&ct, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, ErrNotFound
	}
	return ct, data, err
}

func (s *Store) cacheData(ctx context.Context, id, contentType string, data []byte) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`INSERT INTO upstream_cache(id, content_type, data, fetched_ms) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
			id, contentType, data, s.now().UnixMilli())
		return err
	})
}

// ForwardPending reports how many uploads still wait for the bundler.
func (s *Store) ForwardPending(ctx context.Context) (int, error) {
	var n int
	err := s.d.QueryRow(ctx, `SELECT COUNT(*) FROM forward_queue`).Scan(&n)
	return n, err
}

// forwardLoop sends queued uploads to the bundler until ctx ends, retrying each
// with exponential backoff (1 s doubling to 5 min) until the bundler accepts it.
func (s *Store) forwardLoop(ctx context.Context, b *remote, log *slog.Logger) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
		rows, err := s.d.Query(ctx, `SELECT id, attempts FROM forward_queue WHERE next_ms <= ? ORDER BY next_ms LIMIT 32`, s.now().UnixMilli())
		if err != nil {
			continue
		}
		type job struct {
			id       string
			attempts int
		}
		var jobs []job
		for rows.Next() {
			var j job
			if rows.Scan(&j.id, &j.attempts) == nil {
				jobs = append(jobs, j)
			}
		}
		rows.Close()
		for _, j := range jobs {
			raw, err := s.Raw(ctx, j.id)
			if err == nil {
				err = b.upload(ctx, raw)
			}
			if err == nil {
				s.write(ctx, func(tx *sqldb.Tx) error {
					_, err := tx.Exec(`DELETE FROM forward_queue WHERE id = ?`, j.id)
					return err
				})
				continue
			}
			if ctx.Err() != nil {
				return
			}
			delay := min(time.Second<<min(j.attempts, 9), 5*time.Minute)
			log.Warn("forwarding to the bundler failed; will retry", "id", j.id, "attempt", j.attempts+1, "retry_in", delay, "err", err)
			s.write(ctx, func(tx *sqldb.Tx) error {
				_, err := tx.Exec(`UPDATE forward_queue SET attempts = attempts + 1, next_ms = ?, last_error = ? WHERE id = ?`,
					s.now().Add(delay).UnixMilli(), err.Error(), j.id)
				return err
			})
		}
	}
}
