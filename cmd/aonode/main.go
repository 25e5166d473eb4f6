// Command aonode runs an AO network (gateway, scheduler, compute and messenger
// units) and talks to one: wallets, data items, bundles, processes and messages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one node of the command tree: either it runs, or it has subcommands.
type command struct {
	name    string
	args    string // synopsis after the flags, e.g. "FILE"
	summary string
	help    string // longer text shown by --help
	flags   func(fs *flag.FlagSet) func(ctx context.Context, args []string) error
	subs    []*command
}

// exitError carries a specific exit status; its message (if any) has already
// been printed, or is printed by main.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError marks a mistake on the command line (exit status 2).
func usageError(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

var root = &command{
	name:    "aonode",
	summary: "a Go implementation of AO, the hyper-parallel computer",
	subs:    []*command{walletCmd, dataitemCmd, bundleCmd},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, root, os.Args[1:], []string{"aonode"}, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(os.Stderr, "aonode: %s\n", msg)
		}
		os.Exit(code)
	}
}

// stdout and stderr are where commands write; tests replace them.
var stdout, stderr io.Writer = os.Stdout, os.Stderr

func dispatch(ctx context.Context, c *command, args []string, path []string, out, errw io.Writer) error {
	if len(path) == 1 {
		out, errw = plainUnlessColor(out), plainUnlessColor(errw)
	}
	stdout, stderr = out, errw
	if len(c.subs) > 0 {
		if c == root && len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
			return printVersion(out)
		}
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			if len(args) > 1 && args[0] == "help" {
				return dispatch(ctx, c, append(args[1:], "--help"), path, out, errw)
			}
			// Asked for, help is the result (stdout, status 0); without a
			// command it explains a mistake (stderr, status 2).
			if len(args) == 0 {
				printGroupHelp(errw, c, path)
				return &exitError{code: 2}
			}
			printGroupHelp(out, c, path)
			return nil
		}
		for _, s := range c.subs {
			if s.name == args[0] {
				return dispatch(ctx, s, args[1:], append(path, s.name), out, errw)
			}
		}
		return usageError("unknown command %q; see '%s --help'", args[0], strings.Join(path, " "))
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := c.flags(fs)
	// The flag package calls Usage on every parse error too; help is printed
	// here only when asked for, and a mistake gets one line pointing to it.
	fs.Usage = func() {}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(out, c, fs, path)
		return nil
	}
	if err != nil {
		return usageError("%v; see '%s --help'", err, strings.Join(path, " "))
	}
	return run(ctx, pos)
}

// parseInterspersed parses flags wherever they appear among positional arguments
// ("aonode dataitem verify FILE --json" as well as "... --json FILE"); "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func printGroupHelp(w io.Writer, c *command, path []string) {
	fmt.Fprintf(w, "%s: %s\n\nUsage: %s <command> [flags] [args]\n\nCommands:\n", strings.Join(path, " "), c.summary, strings.Join(path, " "))
	subs := append([]*command(nil), c.subs...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
	for _, s := range subs {
		fmt.Fprintf(w, "  %-12s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for details.\n", strings.Join(path, " "))
	if c == root {
		fmt.Fprintln(w, "'aonode --version' prints the version, commit and build settings.")
	}
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet, path []string) {
	fmt.Fprintf(w, "Usage: %s [flags] %s\n\n%s\n", strings.Join(path, " "), c.args, c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	var any bool
	fs.VisitAll(func(*flag.Flag) { any = true })
	if any {
		fmt.Fprintln(w, "\nFlags:")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if len(f.Name) == 1 {
				line = "  -" + f.Name
			}
			if name != "" {
				line += " " + name
			}
			fmt.Fprintf(w, "%-28s %s", line, usage)
			// A usage that explains its default itself gets no second one.
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && !strings.Contains(usage, "(default") {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
}

// needArgs checks the number of positional arguments.
func needArgs(args []string, n int, what string) error {
	if n == 0 && len(args) > 0 {
		return usageError("unexpected argument %q: this command takes only flags "+
			"(a flag whose value came from an empty shell variable takes the next word as its value)", args[0])
	}
	if len(args) != n {
		return usageError("want %s, got %d argument(s)", what, len(args))
	}
	return nil
}
