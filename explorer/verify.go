package explorer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/aonode/aonode/ans104"
)

// MaxVerifyBytes is the largest item data the signature check reads from the
// gateway; a larger item is reported as not checked.
const MaxVerifyBytes = 16 << 20

// Verdict is the answer of GET /api/verify/{id}.
type Verdict struct {
	ID string `json:"id"`
	// Status is "valid", "invalid" or "unchecked" (not on the gateway yet,
	// too large, or a signature type this node cannot verify).
	Status string `json:"status"`
	Type   string `json:"type,omitempty"` // the signature type that verified
	Reason string `json:"reason,omitempty"`
}

// verify checks an item's signature from what the gateway serves: its
// header fields (GET /tx/{id}) and its data (GET /raw/{id}), rebuilt into the
// ANS-104 item and verified with the ans104 package. The browser could not do
// this offline for every signature type, and the page stays free of crypto.
func (e *Explorer) verify(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := ans104.DecodeID(id); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not an id", id))
		return
	}
	v, err := e.Verify(r.Context(), id)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// Verify checks the signature of the gateway's item id. Errors are the
// gateway's failures; a missing or unverifiable item is a Verdict.
func (e *Explorer) Verify(ctx context.Context, id string) (Verdict, error) {
	v := Verdict{ID: id, Status: "unchecked"}
	gw := e.units["gateway"].String()
	code, b, err := e.get(ctx, gw+"/tx/"+url.PathEscape(id), 1<<20)
	if err != nil {
		return v, fmt.Errorf("reading the item header from the gateway: %w", err)
	}
	if code == http.StatusNotFound {
		v.Reason = "the gateway does not hold this item (yet): the SU publishes it shortly after scheduling"
		return v, nil
	}
	if code != http.StatusOK {
		return v, fmt.Errorf("the gateway answered %d for /tx/%s", code, id)
	}
	var tx struct {
		LastTx    string `json:"last_tx"`
		Owner     string `json:"owner"`
		Target    string `json:"target"`
		Signature string `json:"signature"`
		DataSize  string `json:"data_size"`
		Tags      []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"tags"`
	}
	if err := json.Unmarshal(b, &tx); err != nil {
		return v, fmt.Errorf("the gateway's /tx/%s is not JSON: %w", id, err)
	}
	if n, err := strconv.ParseInt(tx.DataSize, 10, 64); err == nil && n > MaxVerifyBytes {
		v.Reason = fmt.Sprintf("data of %d bytes is larger than the %d bytes the explorer checks", n, MaxVerifyBytes)
		return v, nil
	}
	d := &ans104.DataItem{}
	dec := func(s, what string) []byte {
		if err != nil || s == "" {
			// nil, not empty: an absent target or anchor.
			return nil
		}
		var out []byte
		if out, err = ans104.DecodeBase64URL(s); err != nil {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return out
	}
	d.Owner, d.Signature, d.Target, d.Anchor = dec(tx.Owner, "owner"), dec(tx.Signature, "signature"), dec(tx.Target, "target"), dec(tx.LastTx, "anchor")
	for _, t := range tx.Tags {
		d.Tags = append(d.Tags, ans104.Tag{Name: string(dec(t.Name, "tag name")), Value: string(dec(t.Value, "tag value"))})
	}
	if err != nil {
		v.Status, v.Reason = "invalid", "the gateway's fields do not decode: "+err.Error()
		return v, nil
	}
	code, d.Data, err = e.get(ctx, gw+"/raw/"+url.PathEscape(id), MaxVerifyBytes)
	if err != nil {
		return v, fmt.Errorf("reading the item data from the gateway: %w", err)
	}
	if code != http.StatusOK {
		return v, fmt.Errorf("the gateway answered %d for /raw/%s", code, id)
	}
	if sum := sha256.Sum256(d.Signature); ans104.Base64URL(sum[:]) != id {
		v.Status, v.Reason = "invalid", "the id is not the SHA-256 of the signature"
		return v, nil
	}
	// The header does not carry the signature type: try those whose
	// signature and owner lengths fit.
	var last error
	tried := false
	for _, t := range []ans104.SignatureType{ans104.TypeArweave, ans104.TypeEd25519, ans104.TypeEthereum,
		ans104.TypeSolana, ans104.TypeInjectedAptos, ans104.TypeTypedEthereum} {
		if t.SignatureLength() != len(d.Signature) || t.OwnerLength() != len(d.Owner) {
			continue
		}
		tried = true
		d.Type = t
		it, perr := ans104.Parse(d.Marshal())
		if perr != nil {
			last = perr
			continue
		}
		if last = it.Verify(); last == nil {
			v.Status, v.Type, v.Reason = "valid", t.String(), ""
			return v, nil
		}
	}
	if !tried {
		v.Reason = fmt.Sprintf("no signature type this node verifies has a %d-byte signature and a %d-byte owner", len(d.Signature), len(d.Owner))
		return v, nil
	}
	v.Status, v.Reason = "invalid", last.Error()
	return v, nil
}
