package su

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/aonode/aonode/ans104"
)

// Slot is one parsed slot of a schedule: an assignment and, unless it is a pure
// assignment, the item it assigns (a message, or the process itself at nonce 0).
type Slot struct {
	Assignment  *ans104.DataItem
	Item        *ans104.DataItem // nil for a pure assignment
	ProcessID   string
	Epoch       int64
	Nonce       int64
	Timestamp   int64
	HashChain   string
	BlockHeight string
	MessageID   string // the Message tag; "" for a process's own assignment
}

// ParseSlotBundle reads a slot in the reference SU's layout: a binary bundle of
// [assignment] or [assignment, message or process] (servers/su/message.bin), or
// an SU-signed data item (Bundle-Format binary) wrapping such a bundle, as the
// reference stores it. It checks the layout, the assignment's tags and that the
// assignment names the item; it does not verify signatures.
func ParseSlotBundle(b []byte) (*Slot, error) {
	items, err := ans104.ParseBundle(b)
	if err != nil {
		wrapper, werr := ans104.Parse(b)
		if werr != nil || !wrapper.IsBundle() {
			return nil, fmt.Errorf("su: slot bundle: %w", err)
		}
		if items, err = ans104.ParseBundle(wrapper.Data); err != nil {
			return nil, fmt.Errorf("su: slot bundle in item %s: %w", wrapper.ID(), err)
		}
	}
	if len(items) != 1 && len(items) != 2 {
		return nil, fmt.Errorf("su: slot bundle has %d items, want 1 or 2", len(items))
	}
	s, err := ParseAssignment(items[0])
	if err != nil {
		return nil, err
	}
	if len(items) == 2 {
		s.Item = items[1]
		id := s.Item.ID()
		switch {
		case s.MessageID == "" && id != s.ProcessID:
			return nil, fmt.Errorf("su: slot bundle: process assignment for %s carries item %s", s.ProcessID, id)
		case s.MessageID != "" && id != s.MessageID:
			return nil, fmt.Errorf("su: slot bundle: assignment for %s carries item %s", s.MessageID, id)
		}
	}
	return s, nil
}

// ParseAssignment reads the schedule tags of an assignment item.
func ParseAssignment(a *ans104.DataItem) (*Slot, error) {
	s := &Slot{Assignment: a}
	if t, _ := a.Tag("Type"); t != "Assignment" {
		return nil, errors.New("su: slot: first item is not an Assignment")
	}
	var err error
	get := func(name string) string {
		v, ok := a.Tag(name)
		if !ok && err == nil {
			err = fmt.Errorf("su: assignment %s has no %s tag", a.ID(), name)
		}
		return v
	}
	num := func(name string) int64 {
		v := get(name)
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("su: assignment %s: %s %q is not a number", a.ID(), name, v)
		}
		return n
	}
	s.ProcessID = get("Process")
	s.Epoch, s.Nonce, s.Timestamp = num("Epoch"), num("Nonce"), num("Timestamp")
	s.HashChain, s.BlockHeight = get("Hash-Chain"), get("Block-Height")
	s.MessageID, _ = a.Tag("Message")
	if err != nil {
		return nil, err
	}
	return s, nil
}

// BuildSlotBundle writes a slot in the message.bin layout (no wrapper).
func BuildSlotBundle(assignment, item *ans104.DataItem) []byte {
	if item == nil {
		return ans104.BuildBundle([]*ans104.DataItem{assignment})
	}
	return ans104.BuildBundle([]*ans104.DataItem{assignment, item})
}

// Records converts a parsed slot into what the Store keeps: a ProcessRecord for
// a process's own assignment, else a SlotRecord.
func (s *Slot) Records() (*ProcessRecord, *SlotRecord) {
	aid := s.Assignment.ID()
	if s.MessageID == "" && s.Item != nil {
		return &ProcessRecord{ID: s.ProcessID, Item: s.Item.Bytes(), Assignment: s.Assignment.Bytes(), AssignmentID: aid,
			Epoch: s.Epoch, Nonce: s.Nonce, HashChain: s.HashChain, Timestamp: s.Timestamp, BlockHeight: s.BlockHeight}, nil
	}
	r := &SlotRecord{ProcessID: s.ProcessID, Nonce: s.Nonce, Epoch: s.Epoch, MessageID: s.MessageID, AssignmentID: aid,
		Timestamp: s.Timestamp, HashChain: s.HashChain, BlockHeight: s.BlockHeight, Assignment: s.Assignment.Bytes()}
	if s.Item != nil {
		r.Message = s.Item.Bytes()
	}
	return nil, r
}
