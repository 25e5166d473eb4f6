package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aonode/aonode/ans104"
)

// tagList collects repeated --tag Name=Value flags in order.
type tagList []ans104.Tag

func (t *tagList) String() string { return "" }
func (t *tagList) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("tag %q is not Name=Value", s)
	}
	*t = append(*t, ans104.Tag{Name: name, Value: value})
	return nil
}

// itemJSON is how the CLI shows a data item. Binary fields are base64url; the
// anchor is base64url of its raw bytes, as arbundles and GraphQL show it.
type itemJSON struct {
	Valid         bool         `json:"valid"`
	ID            string       `json:"id"`
	SignatureType int          `json:"signatureType"`
	Owner         string       `json:"owner"`
	OwnerAddress  string       `json:"ownerAddress"`
	Target        string       `json:"target"`
	Anchor        string       `json:"anchor"`
	Tags          []ans104.Tag `json:"tags"`
	DataSize      int          `json:"dataSize"`
	Error         string       `json:"error,omitempty"`
}

func describe(d *ans104.DataItem) itemJSON {
	j := itemJSON{
		Valid: true, ID: d.ID(), SignatureType: int(d.Type), Owner: ans104.Base64URL(d.Owner),
		OwnerAddress: d.OwnerAddress(), Target: ans104.Base64URL(d.Target), Anchor: ans104.Base64URL(d.Anchor),
		Tags: d.Tags, DataSize: len(d.Data),
	}
	if j.Tags == nil {
		j.Tags = []ans104.Tag{}
	}
	if err := d.Verify(); err != nil {
		j.Valid, j.Error = false, err.Error()
	}
	return j
}

// readInput reads a file, or standard input for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

var dataitemCmd = &command{
	name:    "dataitem",
	summary: "sign and verify ANS-104 data items",
	subs: []*command{
		{
			name:    "sign",
			summary: "create and sign a data item",
			help: `Builds a data item with canonical tags and signs it with the wallet. Writes the
item's bytes to -o (- for stdout) and, when writing to a file, prints the item as JSON.
--target is a 43-character id; --anchor is exactly 32 bytes of text (as arbundles takes a string anchor).`,
			flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
				walletPath := walletFlag(fs)
				target := fs.String("target", "", "target `ID` (base64url, 43 characters)")
				anchor := fs.String("anchor", "", "anchor `TEXT`, exactly 32 bytes")
				var tags tagList
				fs.Var(&tags, "tag", "add a tag `Name=Value` (repeatable, kept in order)")
				data := fs.String("data", "", "data `TEXT`")
				dataFile := fs.String("data-file", "", "read the data from `FILE` (- for stdin)")
				out := fs.String("o", "", "write the item to `FILE` (- for stdout; required)")
				return func(ctx context.Context, args []string) error {
					if err := needArgs(args, 0, "no arguments"); err != nil {
						return err
					}
					if *out == "" {
						return usageError("-o FILE is required")
					}
					var opts ans104.Options
					opts.Tags = tags
					if *target != "" {
						id, err := ans104.DecodeID(*target)
						if err != nil {
							return usageError("--target: %v", err)
						}
						opts.Target = id[:]
					}
					if *anchor != "" {
						if len(*anchor) != 32 {
							return usageError("--anchor must be exactly 32 bytes, got %d", len(*anchor))
						}
						opts.Anchor = []byte(*anchor)
					}
					body, err := readData(*data, *dataFile)
					if err != nil {
						return err
					}
					w, err := loadWallet(*walletPath)
					if err != nil {
						return err
					}
					d, err := ans104.Sign(w, body, opts)
					if err != nil {
						return err
					}
					if *out == "-" {
						_, err := stdout.Write(d.Bytes())
						return err
					}
					if err := writeFileAtomic(*out, d.Bytes()); err != nil {
						return err
					}
					return printJSON(describe(d))
				}
			},
		},
		{
			name:    "verify",
			args:    "FILE",
			summary: "check a data item's signature and show its fields",
			help: `Prints {"valid","id","signatureType","owner","ownerAddress","target","anchor","tags","dataSize"}.
Exit status: 0 valid, 1 invalid signature, 2 not a data item. FILE may be - for stdin.`,
			flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
				strict := fs.Bool("strict", false, "also require the standard's tag limits and canonical tag encoding")
				return func(ctx context.Context, args []string) error {
					if err := needArgs(args, 1, "a data item FILE"); err != nil {
						return err
					}
					b, err := readInput(args[0])
					if err != nil {
						return err
					}
					d, err := ans104.Parse(b)
					if err != nil {
						return &exitError{code: 2, msg: err.Error()}
					}
					j := describe(d)
					if *strict && j.Valid {
						if err := d.CheckStrict(); err != nil {
							j.Valid, j.Error = false, err.Error()
						}
					}
					if err := printJSON(j); err != nil {
						return err
					}
					if !j.Valid {
						return &exitError{code: 1}
					}
					return nil
				}
			},
		},
	},
}

var bundleCmd = &command{
	name:    "bundle",
	summary: "read ANS-104 bundles",
	subs: []*command{
		{
			name:    "unpack",
			args:    "FILE",
			summary: "list the data items of a bundle, one JSON object per line",
			help: `FILE is a binary bundle, or a data item whose data is one (Bundle-Format: binary,
Bundle-Version: 2.0.0), as posted to a bundler. Each line is the object 'dataitem verify' prints.
With --dir, each item is also written to DIR/<id>.
Exit status: 0 all items valid, 1 some invalid, 2 not a bundle (header ids are checked against the items).`,
			flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
				dir := fs.String("dir", "", "also write each item's bytes to `DIR`/<id>")
				return func(ctx context.Context, args []string) error {
					if err := needArgs(args, 1, "a bundle FILE"); err != nil {
						return err
					}
					b, err := readInput(args[0])
					if err != nil {
						return err
					}
					items, err := ans104.ParseBundle(b)
					if err != nil {
						if d, ierr := ans104.Parse(b); ierr == nil && d.IsBundle() {
							items, err = ans104.ParseBundle(d.Data)
						}
					}
					if err != nil {
						return &exitError{code: 2, msg: err.Error()}
					}
					if *dir != "" {
						if err := os.MkdirAll(*dir, 0o755); err != nil {
							return err
						}
					}
					var invalid int
					for _, d := range items {
						j := describe(d)
						if !j.Valid {
							invalid++
						}
						if *dir != "" {
							if err := writeFileAtomic(*dir+"/"+j.ID, d.Bytes()); err != nil {
								return err
							}
						}
						if err := printJSON(j); err != nil {
							return err
						}
					}
					if invalid > 0 {
						return &exitError{code: 1, msg: fmt.Sprintf("%d of %d items are invalid", invalid, len(items))}
					}
					return nil
				}
			},
		},
	},
}

// writeFileAtomic writes through a temporary file and a rename, so that a crash
// never leaves a half-written item under the final name.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
