package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aonode/aonode/wallet"
)

var walletCmd = &command{
	name:    "wallet",
	summary: "create wallets and show their addresses",
	subs: []*command{
		{
			name:    "new",
			summary: "generate a wallet key file",
			help: `Writes a new private key as a JWK, readable only by you. Arweave (RSA-4096) is what
aoconnect and the reference units use; generating one takes a few seconds.
Prints {"kind","address","file"} on stdout. An existing file is never replaced.`,
			flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
				kind := fs.String("type", wallet.Arweave, "key `type`: "+strings.Join(wallet.Kinds, ", "))
				out := fs.String("o", "", "write the key to `FILE` (required)")
				return func(ctx context.Context, args []string) error {
					if err := needArgs(args, 0, "no arguments"); err != nil {
						return err
					}
					if *out == "" {
						return usageError("-o FILE is required")
					}
					if _, err := os.Stat(*out); err == nil {
						return fmt.Errorf("%s already exists; not replacing a key file", *out)
					}
					w, err := wallet.Generate(*kind)
					if err != nil {
						return usageError("%v", err)
					}
					if err := w.Save(*out); err != nil {
						return err
					}
					return printJSON(map[string]string{"kind": w.Kind(), "address": w.Address(), "file": *out})
				}
			},
		},
		{
			name:    "address",
			args:    "FILE",
			summary: "print the AO address of a wallet",
			help: `Prints the address AO uses for the key (base64url of SHA-256 of the public key),
as Authority, Scheduler and From tags name it. --native prints the 0x address of an Ethereum key.`,
			flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
				native := fs.Bool("native", false, "print the chain's own address form (0x… for Ethereum keys)")
				return func(ctx context.Context, args []string) error {
					if err := needArgs(args, 1, "a wallet FILE"); err != nil {
						return err
					}
					w, err := wallet.Load(args[0])
					if err != nil {
						return err
					}
					if *native {
						fmt.Fprintln(stdout, w.NativeAddress())
					} else {
						fmt.Fprintln(stdout, w.Address())
					}
					return nil
				}
			},
		},
	},
}

// walletFlag adds the --wallet flag that client commands share.
func walletFlag(fs *flag.FlagSet) *string {
	return fs.String("wallet", "", "wallet key `FILE` (default $AONODE_WALLET, then ~/.aonode/wallet.json, created on first use)")
}

// loadWallet loads the named wallet, or the default one, creating the default
// (an Arweave key) when it does not exist yet.
func loadWallet(path string) (*wallet.Wallet, error) {
	if path == "" {
		path = os.Getenv("AONODE_WALLET")
	}
	if path != "" {
		return wallet.Load(path)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("no --wallet given and no home directory for the default wallet: %w", err)
	}
	path = filepath.Join(home, ".aonode", "wallet.json")
	w, created, err := wallet.LoadOrCreate(path, wallet.Arweave, func(p string) {
		fmt.Fprintf(stderr, "aonode: creating a new Arweave wallet at %s ...\n", p)
	})
	if created {
		fmt.Fprintf(stderr, "aonode: wallet address %s\n", w.Address())
	}
	return w, err
}

func printJSON(v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
