package hb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// patchScan bounds how many of a process's newest results Now reads.
const (
	patchPage  = 100
	patchPages = 50
)

// aoTags are the protocol tags aos adds to every outbox message; they are
// not state a patch@1.0 message exposes.
var aoTags = map[string]bool{"device": true, "data-protocol": true, "variant": true, "type": true, "from-process": true,
	"from-module": true, "reference": true, "pushed-for": true, "target": true, "anchor": true, "data": true}

// Now returns the state pid exposed with patch@1.0 messages
// (Send({device = 'patch@1.0', key = value})), newest value per key. With
// keys it returns the value at that path (a nested key descends into a JSON
// object); without, every exposed key.
func (a *Adapter) Now(ctx context.Context, pid string, keys []string) (any, error) {
	if !validID(pid) {
		return nil, errorf(http.StatusBadRequest, "%q is not a process id", pid)
	}
	if err := a.checkProcess(ctx, pid); err != nil {
		return nil, err
	}
	state := map[string]json.RawMessage{}
	from := ""
	for page := 0; page < patchPages; page++ {
		q := url.Values{"sort": {"DESC"}, "limit": {fmt.Sprint(patchPage)}}
		if from != "" {
			q.Set("from", from)
		}
		code, _, b, err := a.call(ctx, http.MethodGet, a.cfg.CUURL+"/results/"+url.PathEscape(pid)+"?"+q.Encode(), nil, "")
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, unitError("CU", code, b)
		}
		var p struct {
			PageInfo struct {
				HasNextPage bool `json:"hasNextPage"`
			} `json:"pageInfo"`
			Edges []struct {
				Cursor string `json:"cursor"`
				Node   struct {
					Messages []struct {
						Tags []struct {
							Name  string          `json:"name"`
							Value json.RawMessage `json:"value"`
						} `json:"Tags"`
					} `json:"Messages"`
				} `json:"node"`
			} `json:"edges"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("hb: the CU's results of %s: %w", pid, err)
		}
		for _, e := range p.Edges {
			msgs := e.Node.Messages
			for i := len(msgs) - 1; i >= 0; i-- {
				patch := false
				for _, t := range msgs[i].Tags {
					var v string
					if strings.EqualFold(t.Name, "device") && json.Unmarshal(t.Value, &v) == nil && v == "patch@1.0" {
						patch = true
					}
				}
				if !patch {
					continue
				}
				for _, t := range msgs[i].Tags {
					if _, seen := state[t.Name]; !seen && !aoTags[strings.ToLower(t.Name)] {
						state[t.Name] = t.Value
					}
				}
			}
			from = e.Cursor
		}
		if len(keys) > 0 {
			if v, ok := state[keys[0]]; ok {
				return descend(v, keys)
			}
		}
		if !p.PageInfo.HasNextPage || len(p.Edges) == 0 {
			break
		}
	}
	if len(keys) > 0 {
		return nil, errorf(http.StatusNotFound, "process %s exposes no %q: expose it with Send({device = 'patch@1.0', %s = …})", pid, keys[0], keys[0])
	}
	return state, nil
}

// descend follows keys[1:] into v; a JSON string that holds an object is
// descended into too (aos encodes some tables as JSON text).
func descend(v json.RawMessage, keys []string) (any, error) {
	for i, k := range keys[1:] {
		var obj map[string]json.RawMessage
		if json.Unmarshal(v, &obj) != nil {
			var s string
			if json.Unmarshal(v, &s) != nil || json.Unmarshal([]byte(s), &obj) != nil {
				return nil, errorf(http.StatusNotFound, "%s is not an object", strings.Join(keys[:i+1], "/"))
			}
		}
		next, ok := obj[k]
		if !ok {
			return nil, errorf(http.StatusNotFound, "no key %s", strings.Join(keys[:i+2], "/"))
		}
		v = next
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	return v, nil
}

func (a *Adapter) patchRoute(ctx context.Context, w http.ResponseWriter, pid string, keys []string) {
	v, err := a.Now(ctx, pid, keys)
	if err != nil {
		writeError(w, err)
		return
	}
	switch v := v.(type) {
	case string:
		writeText(w, v)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}
