package cu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/su"
)

// The message and env documents given to handle(), built key for key as the
// reference CU's schema leaves them (units.md §5.6, §5.7), because aos stores
// parts of them in memory and a different byte sequence is a different state.

// obj is a JSON object that keeps its key order.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := jsonText(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := jsonText(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// jsonText encodes v as JSON.stringify would for our values: no HTML escaping
// and U+2028/U+2029 left as is.
func jsonText(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if bytes.Contains(out, []byte(`\u202`)) {
		out = bytes.ReplaceAll(out, []byte(`\u2028`), []byte("\u2028"))
		out = bytes.ReplaceAll(out, []byte(`\u2029`), []byte("\u2029"))
	}
	return out, nil
}

// ownerAddress is the CU's addressFrom: the SU address, except that 65-byte
// (uncompressed secp256k1) keys give the EIP-55 Ethereum address.
func ownerAddress(address, key string) string {
	k, err := ans104.DecodeBase64URL(key)
	if err == nil && len(k) == 65 {
		if a, err := ans104.EthereumAddress(k); err == nil {
			return eip55(a)
		}
	}
	return address
}

// eip55 applies EIP-55 mixed-case checksumming to a lower-case 0x address.
func eip55(a string) string {
	h := keccak256([]byte(a[2:]))
	out := []byte(a)
	for i := 2; i < len(out); i++ {
		c := out[i]
		if c >= 'a' && c <= 'f' {
			nib := h[(i-2)/2]
			if (i-2)%2 == 0 {
				nib >>= 4
			}
			if nib&0xf >= 8 {
				out[i] = c - 32
			}
		}
	}
	return string(out)
}

// slot is one scheduled message as evaluation needs it.
type slot struct {
	MessageID    string
	AssignmentID string
	Nonce        int64
	Epoch        int64
	Timestamp    int64
	Height       int64
	HashChain    string
	Cursor       string // SU page cursor
	Doc          obj    // the message JSON
}

func stripTags(tags []su.TagJSON) []su.TagJSON {
	out := make([]su.TagJSON, 0, len(tags))
	for _, t := range tags {
		if t.Name != "From" && t.Name != "Owner" {
			out = append(out, t)
		}
	}
	return out
}

func assignmentNumbers(a *su.AssignmentInnerJSON) (s slot, err error) {
	get := func(name string) (int64, error) {
		v, ok := tagValue(a.Tags, name)
		if !ok {
			return 0, fmt.Errorf("cu: assignment %s has no %s tag", a.ID, name)
		}
		n, ok := jsParseInt(v)
		if !ok {
			return 0, fmt.Errorf("cu: assignment %s: bad %s %q", a.ID, name, v)
		}
		return n, nil
	}
	if s.Nonce, err = get("Nonce"); err != nil {
		return
	}
	if s.Epoch, err = get("Epoch"); err != nil {
		return
	}
	if s.Timestamp, err = get("Timestamp"); err != nil {
		return
	}
	if s.Height, err = get("Block-Height"); err != nil {
		return
	}
	s.HashChain, _ = tagValue(a.Tags, "Hash-Chain")
	s.AssignmentID = a.ID
	return s, nil
}

// messageDoc builds the message JSON of a scheduled message (not a pure
// assignment; see hydrate).
func messageDoc(m *su.MessageInnerJSON, s slot, target string) obj {
	owner := ownerAddress(m.Owner.Address, m.Owner.Key)
	d := obj{{"Id", m.ID}, {"Signature", m.Signature}}
	if m.Data != nil {
		d = append(d, kv{"Data", *m.Data})
	}
	d = append(d, kv{"Owner", owner}, kv{"Target", target}, kv{"Anchor", m.Anchor})
	from := owner
	fp, hasFP := tagValue(m.Tags, "From-Process")
	if hasFP && fp != "" {
		from = fp
	}
	d = append(d, kv{"From", from})
	if hasFP {
		d = append(d, kv{"Forwarded-By", owner})
	}
	return append(d, kv{"Tags", stripTags(m.Tags)}, kv{"Epoch", s.Epoch}, kv{"Nonce", s.Nonce},
		kv{"Timestamp", s.Timestamp}, kv{"Block-Height", s.Height}, kv{"Hash-Chain", s.HashChain},
		kv{"Cron", false}, kv{"Read-Only", false})
}

// cronDoc is a generated cron message (units.md §5.6 special cases).
func cronDoc(pid, owner string, tags []su.TagJSON, ts, height int64) obj {
	return obj{{"Owner", owner}, {"Target", pid}, {"From", owner}, {"Tags", tags},
		{"Timestamp", ts}, {"Block-Height", height}, {"Cron", true}, {"Read-Only", false}}
}

// dryRunDoc builds a dry-run message (units.md §5.9) from the request body.
func dryRunDoc(body map[string]json.RawMessage, pid string, ts, height int64) (obj, error) {
	merged := map[string]json.RawMessage{}
	enc := func(v any) json.RawMessage { b, _ := jsonText(v); return b }
	merged["Timestamp"] = enc(ts)
	merged["Block-Height"] = enc(height)
	merged["Cron"] = enc(false)
	merged["Target"] = enc(pid)
	for k, v := range body {
		merged[k] = v
	}
	var tags []su.TagJSON
	if raw, ok := merged["Tags"]; ok {
		if err := json.Unmarshal(raw, &tags); err != nil {
			return nil, fmt.Errorf("Tags must be a list of {name, value}: %v", err)
		}
	}
	from := merged["Owner"]
	if fp, ok := tagValue(tags, "From-Process"); ok && fp != "" {
		from = enc(fp)
	}
	if from != nil {
		merged["From"] = from
	}
	merged["Read-Only"] = enc(true)
	var d obj
	for _, k := range []string{"Id", "Signature", "Data", "Owner", "Target", "Anchor", "From", "Forwarded-By", "Tags",
		"Epoch", "Nonce", "Timestamp", "Block-Height", "Hash-Chain", "Cron", "Read-Only"} {
		if v, ok := merged[k]; ok && string(v) != "null" || ok && k == "Anchor" {
			d = append(d, kv{k, v})
		}
	}
	return d, nil
}

func (d obj) get(k string) any {
	for _, e := range d {
		if e.k == k {
			return e.v
		}
	}
	return nil
}

// envDoc is the second argument of handle().
func envDoc(pid, pOwner string, pTags []su.TagJSON, mid, mOwner string, mTags []su.TagJSON) obj {
	return obj{
		{"Process", obj{{"Id", pid}, {"Owner", pOwner}, {"Tags", pTags}}},
		{"Module", obj{{"Id", mid}, {"Owner", mOwner}, {"Tags", mTags}}},
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
