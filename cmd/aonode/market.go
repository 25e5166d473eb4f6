package main

import (
	"flag"
	"strings"

	"github.com/aonode/aonode/cu"
)

// marketFlags are the CU's compute-market flags, shared by the commands
// that start a CU.
type marketFlags struct {
	attest, publishAttest, publishPrices *bool
	message, gigafuel, verification, dry *int64
	ledger, publicURL                    *string
}

func addMarketFlags(fs *flag.FlagSet) *marketFlags {
	return &marketFlags{
		attest:        fs.Bool("attestations", true, "attest every result (result and memory digests; the item is signed when asked for)"),
		publishAttest: fs.Bool("publish-attestations", false, "sign every attestation and upload it to the gateway"),
		publishPrices: fs.Bool("publish-prices", false, "upload a signed Compute-Price record naming --public-url at start"),
		message:       fs.Int64("price-message", 0, "`PRICE` of an evaluated message in the ledger token's smallest unit (0: free)"),
		gigafuel:      fs.Int64("price-gigafuel", 0, "`PRICE` per 1e9 units of fuel a message burns"),
		verification:  fs.Int64("price-verification", 0, "`PRICE` of a POST /verify, charged to its signer"),
		dry:           fs.Int64("price-dry-run", 0, "`PRICE` of a dry-run, charged to the process owner"),
		ledger:        fs.String("ledger", "", "token process `PID` whose Transfers to the CU's wallet fund balances (needed with prices)"),
		publicURL:     fs.String("public-url", "", "`URL` clients reach this CU at, for the price record (default: the listen address)"),
	}
}

// apply sets the market part of cfg; listen is the CU's own URL.
func (m *marketFlags) apply(cfg *cu.Config, listen string) error {
	cfg.NoAttestations = !*m.attest
	cfg.PublishAttestations = *m.publishAttest
	cfg.PublishPrices = *m.publishPrices
	cfg.Prices = cu.Prices{Message: *m.message, Gigafuel: *m.gigafuel, Verification: *m.verification, DryRun: *m.dry}
	cfg.Ledger = strings.TrimSpace(*m.ledger)
	cfg.PublicURL = *m.publicURL
	if cfg.PublicURL == "" {
		cfg.PublicURL = strings.NewReplacer("0.0.0.0", "127.0.0.1", "[::]", "127.0.0.1").Replace(listen)
	}
	if cfg.Prices.On() && cfg.Ledger == "" {
		return usageError("prices need --ledger PID: the token process whose Transfers to this CU's wallet fund balances")
	}
	if cfg.PublishAttestations && cfg.NoAttestations {
		return usageError("--publish-attestations needs --attestations")
	}
	return nil
}
