package hb

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/su"
)

// LocationTTL is the Time-To-Live of the node address's Scheduler-Location.
const LocationTTL = 24 * time.Hour

// LocationRecord signs, with the node key s (the MU's), the Scheduler-Location
// record naming suURL. aoconnect spawns with the node address as Scheduler;
// this record is what lets clients that locate a process's SU through the
// gateway (aoconnect's getMessages and getLastSlot, other nodes' units)
// reach the SU that schedules such processes.
func LocationRecord(s ans104.Signer, suURL string) (*ans104.DataItem, error) {
	anchor := make([]byte, 32)
	rand.Read(anchor)
	item, err := ans104.Sign(s, []byte("1984"), ans104.Options{Anchor: anchor, Tags: su.LocationTags(suURL, LocationTTL)})
	if err != nil {
		return nil, fmt.Errorf("hb: signing the node's Scheduler-Location: %w", err)
	}
	return item, nil
}
