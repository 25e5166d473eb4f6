package su

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Chain is the permanent store as the SU uses it: the current block height (for
// Block-Height tags) and uploading data items (assignments, messages, processes,
// the Scheduler-Location record). Upload must return nil only once the item is
// stored; it is retried until it does.
type Chain interface {
	Height(ctx context.Context) (int64, error)
	Upload(ctx context.Context, item []byte) error
}

// TxStatus is the confirmation status of a base-layer transaction.
type TxStatus struct {
	BlockHeight           int64 `json:"block_height"`
	NumberOfConfirmations int64 `json:"number_of_confirmations"`
}

// TxChecker is optionally implemented by a Chain so that assignments of
// existing transactions can be checked: Status for base-layer transactions
// (assign with base-layer), Exists for data items.
type TxChecker interface {
	Status(ctx context.Context, id string) (TxStatus, error)
	Exists(ctx context.Context, id string) (bool, error)
}

// HTTPChain talks to an Arweave-compatible gateway (gateway.md §2): GET /info,
// POST /tx/arweave, GET /tx/{id}/status and HEAD /{id}.
type HTTPChain struct {
	URL    string // gateway base URL, no trailing slash
	Client *http.Client
}

// NewHTTPChain returns a Chain for the gateway at base.
func NewHTTPChain(base string) *HTTPChain {
	return &HTTPChain{URL: strings.TrimRight(base, "/"), Client: &http.Client{Timeout: 30 * time.Second}}
}

func (c *HTTPChain) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Accept", "application/json")
	return c.Client.Do(req)
}

// Height returns the gateway's current height from GET /info.
func (c *HTTPChain) Height(ctx context.Context) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/info", nil)
	if err != nil {
		return 0, fmt.Errorf("su: gateway info: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("su: gateway info: HTTP %d", resp.StatusCode)
	}
	var info struct {
		Height *int64 `json:"height"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return 0, fmt.Errorf("su: gateway info: %w", err)
	}
	if info.Height == nil || *info.Height < 0 {
		return 0, errors.New("su: gateway info: no height")
	}
	return *info.Height, nil
}

// Upload posts a data item to POST /tx/arweave; any 2xx means stored.
func (c *HTTPChain) Upload(ctx context.Context, item []byte) error {
	resp, err := c.do(ctx, http.MethodPost, "/tx/arweave", item)
	if err != nil {
		return fmt.Errorf("su: upload: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("su: upload: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// Status reads GET /tx/{id}/status.
func (c *HTTPChain) Status(ctx context.Context, id string) (TxStatus, error) {
	var st TxStatus
	resp, err := c.do(ctx, http.MethodGet, "/tx/"+id+"/status", nil)
	if err != nil {
		return st, fmt.Errorf("su: tx status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return st, fmt.Errorf("su: tx status %s: %w", id, ErrNotFound)
	}
	if resp.StatusCode/100 != 2 {
		return st, fmt.Errorf("su: tx status %s: HTTP %d", id, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("su: tx status %s: %w", id, err)
	}
	return st, nil
}

// Exists reports whether HEAD /{id} answers 2xx.
func (c *HTTPChain) Exists(ctx context.Context, id string) (bool, error) {
	resp, err := c.do(ctx, http.MethodHead, "/"+id, nil)
	if err != nil {
		return false, fmt.Errorf("su: head %s: %w", id, err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return true, nil
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("su: head %s: HTTP %d", id, resp.StatusCode)
}
