package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/aonode/aonode/client"
)

// clientFlags are the flags every client command shares: the wallet and the
// unit URLs, each defaulting to the environment variable of the same name and
// then to the local network's port.
type clientFlags struct {
	wallet, gateway, mu, cu, su *string
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	return &clientFlags{
		wallet:  walletFlag(fs),
		gateway: fs.String("gateway-url", envOr("GATEWAY_URL", client.DefaultGatewayURL), "gateway `URL` (default $GATEWAY_URL, then the local gateway)"),
		mu:      fs.String("mu-url", envOr("MU_URL", client.DefaultMUURL), "Messenger Unit `URL` (default $MU_URL, then the local MU)"),
		cu:      fs.String("cu-url", envOr("CU_URL", client.DefaultCUURL), "Compute Unit `URL` (default $CU_URL, then the local CU)"),
		su:      fs.String("su-url", envOr("SU_URL", client.DefaultSUURL), "Scheduler Unit `URL` (default $SU_URL, then the local SU)"),
	}
}

func (f *clientFlags) client() (*client.Client, error) {
	w, err := loadWallet(*f.wallet)
	if err != nil {
		return nil, err
	}
	c := client.New(w)
	trim := func(s string) string { return strings.TrimRight(s, "/") }
	c.Gateway, c.MU, c.CU, c.SU = trim(*f.gateway), trim(*f.mu), trim(*f.cu), trim(*f.su)
	return c, nil
}

// muAddress learns the MU wallet address, which aos must trust (Authority) to
// accept messages from other processes. aonode's MU names it in a header of
// GET /; a reference MU does not, so the caller must pass --authority.
func muAddress(ctx context.Context, c *client.Client) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.MU+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if a := resp.Header.Get("Ao-Mu-Address"); a != "" {
		return a, nil
	}
	return "", fmt.Errorf("%s does not say its wallet address; pass --authority ADDRESS (or --no-mu-authority)", c.MU)
}

func readData(text, file string) ([]byte, error) {
	if text != "" && file != "" {
		return nil, usageError("give --data or --data-file, not both")
	}
	if file != "" {
		return readInput(file)
	}
	return []byte(text), nil
}

var moduleCmd = &command{
	name:    "module",
	summary: "publish WASM modules",
	subs: []*command{{
		name:    "publish",
		args:    "FILE",
		summary: "publish a WASM module to the gateway and print its id",
		help: `Signs FILE as a Module data item (Data-Protocol ao, Type Module, Module-Format,
Input-Encoding and Output-Encoding JSON-V1, Memory-Limit, Compute-Limit) and uploads it
to the gateway's bundler route. Prints the module id.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cf := addClientFlags(fs)
			format := fs.String("format", "wasm32-unknown-emscripten4", "Module-Format `F`")
			mem := fs.String("memory-limit", "1-gb", "Memory-Limit (e.g. 512-mb, 1-gb; empty for none)")
			compute := fs.String("compute-limit", "9000000000000", "Compute-Limit `N` (empty for none)")
			var tags tagList
			fs.Var(&tags, "tag", "extra tag `Name=Value` (repeatable)")
			return func(ctx context.Context, args []string) error {
				if err := needArgs(args, 1, "a WASM FILE"); err != nil {
					return err
				}
				wasm, err := readInput(args[0])
				if err != nil {
					return err
				}
				if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
					return fmt.Errorf("%s is not a WebAssembly binary", args[0])
				}
				c, err := cf.client()
				if err != nil {
					return err
				}
				id, err := c.PublishModule(ctx, wasm, client.Module{Format: *format, MemoryLimit: *mem, ComputeLimit: *compute, Tags: tags})
				if err != nil {
					return err
				}
				fmt.Fprintln(stdout, id)
				return nil
			}
		},
	}},
}

var spawnCmd = &command{
	name:    "spawn",
	summary: "spawn a process and print its id",
	help: `Signs a Process item and sends it to the MU. The scheduler defaults to the SU at
--su-url. The MU's wallet is added as an Authority tag so that aos trusts messages
other processes send it (--no-mu-authority to leave it out). With --wait, waits for the
process's boot result and prints it as JSON after the id.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs)
		module := fs.String("module", "", "module `ID` (required)")
		scheduler := fs.String("scheduler", "", "scheduler `ADDRESS` (default: the SU at --su-url)")
		var authorities stringList
		fs.Var(&authorities, "authority", "add an Authority `ADDRESS` (repeatable)")
		noMU := fs.Bool("no-mu-authority", false, "do not add the MU's address as an Authority")
		name := fs.String("name", "", "process `NAME` (the Name tag)")
		cron := fs.String("cron", "", "Cron-Interval, e.g. 10-seconds")
		var tags tagList
		fs.Var(&tags, "tag", "add a tag `Name=Value` (repeatable)")
		data := fs.String("data", "", "data `TEXT` (aos runs it at boot with On-Boot=Data)")
		dataFile := fs.String("data-file", "", "read the data from `FILE`")
		wait := fs.Bool("wait", false, "wait for the boot result and print it")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			if *module == "" {
				return usageError("--module is required")
			}
			body, err := readData(*data, *dataFile)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if *scheduler == "" {
				if *scheduler, err = c.SchedulerAddress(ctx); err != nil {
					return fmt.Errorf("%w (or pass --scheduler)", err)
				}
			}
			var all []client.Tag
			if !*noMU {
				a, err := muAddress(ctx, c)
				if err != nil {
					return err
				}
				all = append(all, client.Tag{Name: "Authority", Value: a})
			}
			for _, a := range authorities {
				all = append(all, client.Tag{Name: "Authority", Value: a})
			}
			if *name != "" {
				all = append(all, client.Tag{Name: "Name", Value: *name})
			}
			if *cron != "" {
				all = append(all, client.Tag{Name: "Cron-Interval", Value: *cron})
			}
			all = append(all, tags...)
			id, err := c.Spawn(ctx, client.Spawn{Module: *module, Scheduler: *scheduler, Tags: all, Data: body})
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, id)
			if *wait {
				r, err := c.Result(ctx, id, id)
				if err != nil {
					return err
				}
				return printJSON(r)
			}
			return nil
		}
	},
}

var sendCmd = &command{
	name:    "send",
	summary: "send a message to a process and print its id",
	help:    `Signs a message and sends it to the MU. With --wait, also prints its result as JSON.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs)
		process := fs.String("process", "", "target process `ID` (required)")
		action := fs.String("action", "", "the Action tag")
		var tags tagList
		fs.Var(&tags, "tag", "add a tag `Name=Value` (repeatable)")
		data := fs.String("data", "", "data `TEXT`")
		dataFile := fs.String("data-file", "", "read the data from `FILE`")
		wait := fs.Bool("wait", false, "wait for the result and print it as JSON")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			if *process == "" {
				return usageError("--process is required")
			}
			body, err := readData(*data, *dataFile)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			all := []client.Tag(tags)
			if *action != "" {
				all = append([]client.Tag{{Name: "Action", Value: *action}}, all...)
			}
			id, err := c.Message(ctx, client.Message{Process: *process, Tags: all, Data: body})
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, id)
			if *wait {
				r, err := c.Result(ctx, *process, id)
				if err != nil {
					return err
				}
				return printJSON(r)
			}
			return nil
		}
	},
}

var resultCmd = &command{
	name:    "result",
	args:    "MESSAGE",
	summary: "print the result of a message as JSON",
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs)
		process := fs.String("process", "", "process `ID` (required)")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 1, "a MESSAGE id"); err != nil {
				return err
			}
			if *process == "" {
				return usageError("--process is required")
			}
			c := client.New(nil)
			c.CU = strings.TrimRight(*cf.cu, "/")
			r, err := c.Result(ctx, *process, args[0])
			if err != nil {
				return err
			}
			return printJSON(r)
		}
	},
}

// evalLua sends an Eval and waits for its result.
func evalLua(ctx context.Context, c *client.Client, process, code string) (*client.Result, error) {
	id, err := c.Message(ctx, client.Message{Process: process, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte(code)})
	if err != nil {
		return nil, err
	}
	return c.Result(ctx, process, id)
}

var evalCmd = &command{
	name:    "eval",
	args:    "CODE",
	summary: "evaluate Lua in an aos process and print its output",
	help: `Sends CODE as an Eval message (only the process owner may) and prints Output.data.
CODE may be - to read it from stdin. With --json, prints the whole result. An error in
the process is printed to stderr and exits with status 1.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs)
		process := fs.String("process", "", "process `ID` (required)")
		asJSON := fs.Bool("json", false, "print the whole result as JSON")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 1, "Lua CODE"); err != nil {
				return err
			}
			if *process == "" {
				return usageError("--process is required")
			}
			code := args[0]
			if code == "-" {
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return err
				}
				code = string(b)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := evalLua(ctx, c, *process, code)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(r)
			}
			if r.Failed() {
				return errors.New(errorText(r))
			}
			fmt.Fprintln(stdout, r.OutputData())
			return nil
		}
	},
}

func errorText(r *client.Result) string {
	var s string
	if json.Unmarshal(r.Error, &s) == nil {
		return s
	}
	return string(r.Error)
}

var replCmd = &command{
	name:    "repl",
	summary: "an aos-like prompt for a process",
	help: `Reads Lua lines, evaluates each in the process and prints Output.data, then the
process's prompt. New Inbox messages are shown after each line. A line ending in a
backslash continues on the next line. .exit or Ctrl-D leaves.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs)
		process := fs.String("process", "", "process `ID` (required)")
		return func(ctx context.Context, args []string) error {
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			if *process == "" {
				return usageError("--process is required")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			return repl(ctx, c, *process, os.Stdin)
		}
	},
}

func repl(ctx context.Context, c *client.Client, process string, in io.Reader) error {
	inboxSeen := -1
	prompt := "aos> "
	showInbox := func() {
		r, err := c.DryRun(ctx, client.Message{Process: process, Tags: []client.Tag{{Name: "Action", Value: "Eval"}},
			Data: []byte(`local t = {} for i = ` + fmt.Sprint(max(inboxSeen, 0)+1) + `, #Inbox do local m = Inbox[i] t[#t+1] = {From = m.From, Action = m.Action, Data = m.Data} end return require("json").encode({n = #Inbox, m = t})`)})
		if err != nil || r.Failed() {
			return
		}
		if p := r.Prompt(); p != "" {
			prompt = p
		}
		var inbox struct {
			N int `json:"n"`
			M []struct{ From, Action, Data string }
		}
		if json.Unmarshal([]byte(r.OutputData()), &inbox) != nil {
			return
		}
		if inboxSeen >= 0 {
			for _, m := range inbox.M {
				fmt.Fprintf(stdout, "New message from %s: Action = %s, Data = %s\n", m.From, m.Action, m.Data)
			}
		}
		inboxSeen = inbox.N
	}
	showInbox()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var code strings.Builder
	fmt.Fprint(stdout, prompt)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasSuffix(line, "\\") {
			code.WriteString(strings.TrimSuffix(line, "\\") + "\n")
			fmt.Fprint(stdout, "... ")
			continue
		}
		code.WriteString(line)
		src := strings.TrimSpace(code.String())
		code.Reset()
		if src == ".exit" {
			return nil
		}
		if src != "" {
			r, err := evalLua(ctx, c, process, src)
			switch {
			case err != nil:
				fmt.Fprintln(stderr, "error:", err)
			case r.Failed():
				fmt.Fprintln(stdout, errorText(r))
			default:
				if out := r.OutputData(); out != "" {
					fmt.Fprintln(stdout, out)
				}
				if p := r.Prompt(); p != "" {
					prompt = p
				}
			}
			showInbox()
		}
		fmt.Fprint(stdout, prompt)
	}
	fmt.Fprintln(stdout)
	return sc.Err()
}

// stringList collects a repeated string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func init() {
	root.subs = append(root.subs, moduleCmd, spawnCmd, sendCmd, resultCmd, evalCmd, replCmd)
}
