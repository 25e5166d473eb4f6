package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/aonode/aonode/cu/wasm"
)

var versionCmd = &command{
	name:    "version",
	summary: "print the version, commit and build settings",
	help: `Prints the module version, the commit it was built from (with "+modified" when the
work tree had changes), the Go version and the build settings, among them CGO_ENABLED:
a binary built as the README says has CGO_ENABLED=0 and needs no C library. It also
names the wasm engines the binary can run processes on, the default first: wazero (pure
Go, always there) and wasmtime (built with CGO_ENABLED=1 -tags wasmtime).`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			return printVersion(stdout)
		}
	},
}

func init() { root.subs = append(root.subs, versionCmd) }

// printVersion reports what runtime/debug knows about this binary, so a bug
// report can say exactly which build it is about.
func printVersion(w io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("this binary carries no build information")
	}
	settings := map[string]string{}
	var keys []string
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
		keys = append(keys, s.Key)
	}
	commit := settings["vcs.revision"]
	if commit == "" {
		commit = "unknown (no VCS stamp: built outside a git checkout, or with -buildvcs=false)"
	} else if settings["vcs.modified"] == "true" {
		commit += "+modified"
	}
	if t := settings["vcs.time"]; t != "" {
		commit += " (" + t + ")"
	}
	fmt.Fprintf(w, "aonode %s\ncommit %s\n%s\n", bi.Main.Version, commit, bi.GoVersion)
	fmt.Fprintf(w, "wasm engines: %s (default %s)\n", strings.Join(wasm.Engines(), ", "), wasm.DefaultEngine())
	for _, k := range keys {
		if !strings.HasPrefix(k, "vcs.") {
			fmt.Fprintf(w, "  %s=%s\n", k, settings[k])
		}
	}
	return nil
}
