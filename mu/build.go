package mu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aonode/aonode/ans104"
)

// Tag is a name/value pair as the CU's result JSON carries it.
type Tag = ans104.Tag

// OutMessage is one outbox message of a result (units.md §5.2).
type OutMessage struct {
	Target string `json:"Target"`
	Data   string `json:"Data"`
	Anchor string `json:"Anchor"`
	Tags   []Tag  `json:"Tags"`
}

// OutSpawn is one outbox spawn of a result.
type OutSpawn struct {
	Data   string `json:"Data"`
	Anchor string `json:"Anchor,omitempty"`
	Tags   []Tag  `json:"Tags"`
}

// OutAssignment is one outbox assignment of a result.
type OutAssignment struct {
	Processes []string `json:"Processes"`
	Message   string   `json:"Message"`
	Exclude   []string `json:"Exclude,omitempty"`
	BaseLayer bool     `json:"BaseLayer,omitempty"`
}

// Result is the part of a CU result the MU acts on, already filtered as the
// reference filters it: messages without Target, Anchor or Tags are dropped.
type Result struct {
	Messages    []OutMessage
	Spawns      []OutSpawn
	Assignments []OutAssignment
	Error       json.RawMessage
}

// ParseResult decodes the CU's result JSON. Entries that do not have the
// reference's shape are dropped, as the reference drops them; only a body that
// is not a JSON object at all is an error.
func ParseResult(b []byte) (*Result, error) {
	var raw struct {
		Messages    []json.RawMessage `json:"Messages"`
		Spawns      []json.RawMessage `json:"Spawns"`
		Assignments []json.RawMessage `json:"Assignments"`
		Error       json.RawMessage   `json:"Error"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("mu: result JSON: %w", err)
	}
	r := &Result{Error: raw.Error}
	for _, m := range raw.Messages {
		if om, ok := parseOutMessage(m); ok {
			r.Messages = append(r.Messages, om)
		}
	}
	for _, s := range raw.Spawns {
		var f map[string]json.RawMessage
		if json.Unmarshal(s, &f) != nil {
			continue
		}
		tags, ok := parseTags(f["Tags"])
		if !ok {
			continue
		}
		r.Spawns = append(r.Spawns, OutSpawn{Data: dataString(f["Data"]), Anchor: jsonString(f["Anchor"]), Tags: tags})
	}
	for _, a := range raw.Assignments {
		var f struct {
			Processes []string `json:"Processes"`
			Message   string   `json:"Message"`
			Exclude   []string `json:"Exclude"`
			BaseLayer any      `json:"BaseLayer"`
		}
		if json.Unmarshal(a, &f) != nil || f.Message == "" || len(f.Processes) == 0 {
			continue
		}
		r.Assignments = append(r.Assignments, OutAssignment{Processes: f.Processes, Message: f.Message, Exclude: f.Exclude, BaseLayer: f.BaseLayer == true})
	}
	return r, nil
}

// parseOutMessage keeps a message only if Target, Anchor and Tags are defined
// and Tags is an array of {name, value} (units.md §4.4, "Result filtering").
func parseOutMessage(b json.RawMessage) (OutMessage, bool) {
	var f map[string]json.RawMessage
	if json.Unmarshal(b, &f) != nil {
		return OutMessage{}, false
	}
	target, okT := f["Target"]
	anchor, okA := f["Anchor"]
	tags, ok := parseTags(f["Tags"])
	if !okT || !okA || !ok || isNull(target) || isNull(anchor) {
		return OutMessage{}, false
	}
	return OutMessage{Target: jsonString(target), Anchor: jsonString(anchor), Data: dataString(f["Data"]), Tags: tags}, true
}

func isNull(b json.RawMessage) bool {
	return len(bytes.TrimSpace(b)) == 0 || string(bytes.TrimSpace(b)) == "null"
}

func parseTags(b json.RawMessage) ([]Tag, bool) {
	if isNull(b) {
		return nil, false
	}
	var raw []map[string]json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil, false
	}
	tags := make([]Tag, 0, len(raw))
	for _, t := range raw {
		n, okN := t["name"]
		v, okV := t["value"]
		if !okN || !okV {
			return nil, false
		}
		tags = append(tags, Tag{Name: jsonString(n), Value: jsonString(v)})
	}
	return tags, true
}

// jsonString is a JSON string's value, or the JSON text of anything else (as
// JavaScript's String() would give for numbers and booleans).
func jsonString(b json.RawMessage) string {
	if isNull(b) {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(b))
}

// dataString is outbox Data: a string as is, anything else as its JSON text.
func dataString(b json.RawMessage) string { return jsonString(b) }

// Reference MU tag rules (units.md §4.4). The functions below are pure so that
// they can be tested tag by tag against the reference's behaviour.

func without(tags []Tag, names ...string) []Tag {
	out := make([]Tag, 0, len(tags)+6)
	for _, t := range tags {
		drop := false
		for _, n := range names {
			if t.Name == n {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, t)
		}
	}
	return out
}

func tagValue(tags []Tag, name string) (string, bool) {
	for _, t := range tags {
		if t.Name == name {
			return t.Value, true
		}
	}
	return "", false
}

// nonEmpty drops tags with an empty value, which an ANS-104 item cannot carry
// when created to the standard's limits (arbundles would write them; our
// signer refuses them).
func nonEmpty(tags []Tag) []Tag {
	out := tags[:0:0]
	for _, t := range tags {
		if t.Value != "" && t.Name != "" {
			out = append(out, t)
		}
	}
	return out
}

// Template is an unsigned item: what the MU will sign.
type Template struct {
	Target string `json:"target,omitempty"`
	Anchor string `json:"anchor,omitempty"` // raw anchor bytes as a string
	Tags   []Tag  `json:"tags"`
	Data   string `json:"data"`
}

// MessageTemplate builds the item the MU pushes for an outbox message of
// process from (whose Module is fromModule, "" if unknown), pushed for the
// user message root ("" for cron-originated pushes). It also returns the
// Assignments tag's processes, which become assignments of the new item.
func MessageTemplate(m OutMessage, from, fromModule, root string) (Template, []string) {
	tags := without(m.Tags, "Data-Protocol", "Type", "From-Process", "From-Module", "Assignments")
	tags = append(tags, Tag{Name: "Data-Protocol", Value: "ao"}, Tag{Name: "Type", Value: "Message"}, Tag{Name: "From-Process", Value: from})
	if fromModule != "" {
		tags = append(tags, Tag{Name: "From-Module", Value: fromModule})
	}
	if root != "" {
		tags = append(tags, Tag{Name: "Pushed-For", Value: root})
	}
	data := m.Data
	if data == "" {
		data = " "
	}
	var assign []string
	if v, ok := tagValue(m.Tags, "Assignments"); ok {
		assign = splitList(v)
	}
	return Template{Target: m.Target, Anchor: m.Anchor, Tags: nonEmpty(tags), Data: data}, assign
}

// splitList reads an Assignments tag value: a JSON array of ids (as aos
// writes it) or a comma-separated list.
func splitList(v string) []string {
	var arr []string
	if json.Unmarshal([]byte(v), &arr) == nil {
		return arr
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func variantOf(tags []Tag) string {
	if v, _ := tagValue(tags, "Variant"); v == "ao.N.1" {
		return "ao.N.1"
	}
	return "ao.TN.1"
}

// errNoModule: a spawn without a Module tag cannot become a process.
var errNoModule = errors.New("spawn has no Module tag")

// SpawnTemplate builds the Process item for an outbox spawn of process from,
// whose Module and Scheduler are parentModule and parentScheduler.
func SpawnTemplate(s OutSpawn, from, parentModule, parentScheduler, root string) (Template, error) {
	if _, ok := tagValue(s.Tags, "Module"); !ok {
		return Template{}, errNoModule
	}
	tags := without(s.Tags, "Data-Protocol", "Type")
	tags = append(tags, Tag{Name: "Variant", Value: variantOf(s.Tags)}, Tag{Name: "Data-Protocol", Value: "ao"},
		Tag{Name: "Type", Value: "Process"}, Tag{Name: "From-Process", Value: from})
	if root != "" {
		tags = append(tags, Tag{Name: "Pushed-For", Value: root})
	}
	if _, ok := tagValue(tags, "Scheduler"); !ok && parentScheduler != "" {
		tags = append(tags, Tag{Name: "Scheduler", Value: parentScheduler})
	}
	if parentModule != "" {
		for i := range tags {
			if tags[i].Name == "From-Module" {
				tags[i].Value = parentModule
			}
		}
	}
	return Template{Tags: nonEmpty(tags), Data: s.Data}, nil
}

// SpawnedTemplate builds the "Spawned" reply to process from for its spawn s,
// which created process newPID.
func SpawnedTemplate(s OutSpawn, from, newPID string) Template {
	tags := without(s.Tags, "Data-Protocol", "Variant", "Type")
	tags = append(tags, Tag{Name: "Data-Protocol", Value: "ao"}, Tag{Name: "Type", Value: "Message"},
		Tag{Name: "Process", Value: newPID}, Tag{Name: "Action", Value: "Spawned"}, Tag{Name: "Variant", Value: variantOf(s.Tags)})
	return Template{Target: from, Tags: nonEmpty(tags), Data: " "}
}

// Sign signs t with s. Target must be an id; the anchor must be 32 bytes (aos
// writes 32 zero-padded digits).
func (t Template) Sign(s ans104.Signer) (*ans104.DataItem, error) {
	var opts ans104.Options
	if t.Target != "" {
		id, err := ans104.DecodeID(t.Target)
		if err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		opts.Target = id[:]
	}
	if t.Anchor != "" {
		if len(t.Anchor) != 32 {
			return nil, fmt.Errorf("anchor %q is %d bytes, want 32", t.Anchor, len(t.Anchor))
		}
		opts.Anchor = []byte(t.Anchor)
	}
	opts.Tags = t.Tags
	return ans104.Sign(s, []byte(t.Data), opts)
}
