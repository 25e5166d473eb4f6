package cu

import (
	"testing"

	"github.com/aonode/aonode/ans104"
)

// FuzzReadAttestation feeds /verify's attestation parsing arbitrary
// attestation items (signed, so that the parsing past the signature check
// is reached) and arbitrary request bytes: it must answer or refuse, never
// crash.
func FuzzReadAttestation(f *testing.F) {
	key := cuKey("fuzz")
	pid := ans104.Base64URL(make([]byte, 32))
	f.Add([]byte(`{"Messages":[]}`), "Attestation", pid, "1", "1700000000000", "0000000000000000000000000000000000000000000000000000000000000000", []byte("x"))
	f.Add([]byte(`{}`), "Checkpoint", "x", "-1", "a", "", []byte{})
	f.Fuzz(func(t *testing.T, data []byte, typ, process, slot, ts, digest string, raw []byte) {
		s := &Server{}
		tags := []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Type", Value: typ}, {Name: "Process", Value: process},
			{Name: "Message", Value: process}, {Name: "Slot", Value: slot}, {Name: "Timestamp", Value: ts},
			{Name: "Result-SHA-256", Value: digest}, {Name: "Memory-SHA-256", Value: digest}}
		for _, tg := range tags {
			if tg.Value == "" {
				return // (the ANS-104 spec asks for non-empty tag values)
			}
		}
		att, err := ans104.Sign(key, data, ans104.Options{Tags: tags})
		if err != nil {
			return
		}
		req, err := ans104.Sign(key, att.Bytes(), ans104.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if a, err := s.readAttestation(t.Context(), req); err == nil && (a.pid != process || len(a.resultSHA) != 64) {
			t.Fatalf("accepted a bad attestation: %+v", a)
		}
		// Raw bytes as the request's data: parsed, never trusted.
		if req, err := ans104.Sign(key, raw, ans104.Options{}); err == nil && len(raw) > 0 {
			s.readAttestation(t.Context(), req)
		}
	})
}
