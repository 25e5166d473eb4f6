package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/placement"
)

// clientFlags are the flags client commands share: the wallet and the unit
// URLs, each defaulting to the environment variable of the same name and then
// to the local network's port. A command lists only the ones it uses.
type clientFlags struct {
	wallet, gateway, mu, cu, su *string
	cuDiscover                  *bool
	hasWallet                   bool
}

// unit names a unit URL flag: its flag stem, environment variable and what a
// person calls the unit.
type unit struct{ flag, env, def, name string }

var (
	unitGateway = unit{"gateway", "GATEWAY_URL", client.DefaultGatewayURL, "gateway"}
	unitMU      = unit{"mu", "MU_URL", client.DefaultMUURL, "Messenger Unit"}
	unitCU      = unit{"cu", "CU_URL", client.DefaultCUURL, "Compute Unit"}
	unitSU      = unit{"su", "SU_URL", client.DefaultSUURL, "Scheduler Unit"}
)

// addClientFlags adds --wallet (when signs) and the URL flags of units.
func addClientFlags(fs *flag.FlagSet, signs bool, units ...unit) *clientFlags {
	cf := &clientFlags{hasWallet: signs}
	if signs {
		cf.wallet = walletFlag(fs)
	} else {
		cf.wallet = new(string)
	}
	for _, u := range []struct {
		unit
		dst **string
	}{{unitGateway, &cf.gateway}, {unitMU, &cf.mu}, {unitCU, &cf.cu}, {unitSU, &cf.su}} {
		if slices.Contains(units, u.unit) {
			help := u.name + " `URL` (default $" + u.env + ", then " + u.def + ")"
			if u.unit == unitCU {
				help = "Compute Unit `URLS`: one, or several comma-separated to choose per process the cheapest healthy one with failover (default $CU_URL, then " + u.def + ")"
			}
			*u.dst = fs.String(u.flag+"-url", envOr(u.env, u.def), help)
		} else {
			*u.dst = new(string)
			**u.dst = envOr(u.env, u.def)
		}
	}
	cf.cuDiscover = new(bool)
	if slices.Contains(units, unitCU) {
		cf.cuDiscover = fs.Bool("cu-discover", false, "also choose among the CUs whose Compute-Price records the gateway holds")
	}
	return cf
}

func (f *clientFlags) client() (*client.Client, error) {
	c := client.New(nil)
	if f.hasWallet {
		w, err := loadWallet(*f.wallet)
		if err != nil {
			return nil, err
		}
		c.Signer = w
	}
	trim := func(s string) string { return strings.TrimRight(s, "/") }
	c.Gateway, c.MU, c.CU, c.SU = trim(*f.gateway), trim(*f.mu), trim(*f.cu), trim(*f.su)
	c.CUs = nil
	if strings.Contains(*f.cu, ",") || *f.cuDiscover {
		urls, err := placement.ParseURLs(*f.cu)
		if err != nil {
			return nil, usageError("--cu-url: %v", err)
		}
		if err := c.UseCUs(urls, *f.cuDiscover); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// explain turns a failure to reach a unit into what the user can do about it.
func (f *clientFlags) explain(err error) error {
	if err == nil || !isUnreachable(err) {
		return err
	}
	var ue *url.Error
	target := ""
	if errors.As(err, &ue) {
		target = ue.URL
	}
	for _, u := range []struct {
		unit
		url string
	}{{unitGateway, *f.gateway}, {unitMU, *f.mu}, {unitCU, *f.cu}, {unitSU, *f.su}} {
		for _, one := range strings.Split(u.url, ",") { // --cu-url may list several
			// base+"/": a unit at :4000 does not claim a request to :40000.
			if base := strings.TrimRight(strings.TrimSpace(one), "/"); base != "" && strings.HasPrefix(target+"/", base+"/") {
				return fmt.Errorf("cannot reach the %[1]s at %[2]s: is the node running? Start it with 'aonode run' "+
					"(or point --%[3]s-url or $%[4]s at a running %[1]s)\n  (%[5]v)", u.name, base, u.flag, u.env, err)
			}
		}
	}
	return fmt.Errorf("%w\n  is the node running? Start it with 'aonode run'", err)
}

// isUnreachable reports a connection that was refused or never made.
func isUnreachable(err error) bool {
	var oe *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &oe) && oe.Op == "dial")
}

// checkID checks a flag that must hold a 43-character id. A shell variable
// that is empty ("--module $M") makes the next flag the value, so the error
// says so.
func checkID(flagName, value, what, hint string) error {
	if value == "" {
		return usageError("%s is required: the %s id (%s)", flagName, what, hint)
	}
	if _, err := ans104.DecodeID(value); err != nil {
		return usageError("%s %q is not a %s id (43 characters of base64url); "+
			"if it came from a shell variable, the variable is probably empty (%s)", flagName, value, what, hint)
	}
	return nil
}

// processNotFound rewords the MU's answer for a process it cannot find.
func processNotFound(err error, process string) error {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status/100 == 4 && strings.Contains(ce.Msg, "not found") {
		return fmt.Errorf("process %s does not exist on this network: check the id ('aonode spawn' prints it) "+
			"and that $MU_URL and $GATEWAY_URL point at the network that spawned it\n  (%v)", process, err)
	}
	return err
}

const (
	hintModule  = "'aonode module publish FILE' prints one"
	hintProcess = "'aonode spawn' prints one"
)

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
			cf := addClientFlags(fs, true, unitGateway)
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
					return cf.explain(err)
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
	help: `Checks that --module is a Module item at the gateway, signs a Process item and sends
it to the MU. The scheduler is the SU at --su-url. The MU's wallet is added as an
Authority tag so that aos trusts messages other processes send it (--no-mu-authority
to leave it out). With --wait, waits for the process's boot result and prints it as
JSON after the id.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs, true, unitGateway, unitMU, unitSU)
		module := fs.String("module", "", "module `ID` (required; 'aonode module publish' prints one)")
		scheduler := fs.String("scheduler", "", "scheduler `ADDRESS` (default: the address of the SU at --su-url)")
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
			if err := checkID("--module", *module, "module", hintModule); err != nil {
				return err
			}
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			body, err := readData(*data, *dataFile)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.CheckModule(ctx, *module); err != nil {
				if errors.Is(err, client.ErrNotModule) {
					return fmt.Errorf("cannot spawn: --module %s is not a module on this network (%v)\n"+
						"  publish one with 'aonode module publish FILE' and pass the id it prints", *module, err)
				}
				return cf.explain(err)
			}
			if *scheduler == "" {
				if *scheduler, err = c.SchedulerAddress(ctx); err != nil {
					if isUnreachable(err) {
						return cf.explain(err)
					}
					return fmt.Errorf("%w\n  the SU at %s did not say its address: pass --scheduler ADDRESS", err, c.SU)
				}
			}
			var all []client.Tag
			if !*noMU {
				a, err := muAddress(ctx, c)
				if err != nil {
					return cf.explain(err)
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
				return cf.explain(err)
			}
			fmt.Fprintln(stdout, id)
			if *wait {
				r, err := c.Result(ctx, id, id)
				if err != nil {
					return cf.explain(err)
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
	help: `Signs a message and sends it to the MU. With --wait, also waits for its result and
until everything it caused has been delivered and evaluated (its outbox messages, their
replies, and so on), then prints the result as JSON.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs, true, unitMU, unitCU)
		process := fs.String("process", "", "target process `ID` (required)")
		action := fs.String("action", "", "the Action tag")
		var tags tagList
		fs.Var(&tags, "tag", "add a tag `Name=Value` (repeatable)")
		data := fs.String("data", "", "data `TEXT`")
		dataFile := fs.String("data-file", "", "read the data from `FILE`")
		wait := fs.Bool("wait", false, "wait for the result and for what the message caused to be delivered; print the result as JSON")
		timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting after this long (with --wait)")
		return func(ctx context.Context, args []string) error {
			if err := checkID("--process", *process, "process", hintProcess); err != nil {
				return err
			}
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
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
				return cf.explain(processNotFound(err, *process))
			}
			fmt.Fprintln(stdout, id)
			if *wait {
				ctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				r, err := c.Result(ctx, *process, id)
				if err != nil {
					return cf.explain(err)
				}
				if err := c.WaitDelivered(ctx, id); err != nil {
					return cf.explain(err)
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
		cf := addClientFlags(fs, false, unitCU)
		process := fs.String("process", "", "process `ID` (required)")
		return func(ctx context.Context, args []string) error {
			if err := checkID("--process", *process, "process", hintProcess); err != nil {
				return err
			}
			if err := needArgs(args, 1, "a MESSAGE id"); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.Result(ctx, *process, args[0])
			if err != nil {
				return cf.explain(err)
			}
			return printJSON(r)
		}
	},
}

// evalLua sends an Eval and waits for its result.
func evalLua(ctx context.Context, c *client.Client, process, code string) (string, *client.Result, error) {
	id, err := c.Message(ctx, client.Message{Process: process, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte(code)})
	if err != nil {
		return "", nil, err
	}
	r, err := c.Result(ctx, process, id)
	return id, r, err
}

var evalCmd = &command{
	name:    "eval",
	args:    "CODE",
	summary: "evaluate Lua in an aos process and print its output",
	help: `Sends CODE as an Eval message (only the process owner may) and prints Output.data.
CODE may be - to read it from stdin. With --json, prints the whole result. An error in
the process is printed to stderr and exits with status 1.

With --wait, also waits until everything the code caused has been delivered: the
messages it sent have been evaluated by their targets, their replies by theirs, and so
on. After 'eval --wait ... "Send(...)"', the reply is in the Inbox.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs, true, unitMU, unitCU)
		process := fs.String("process", "", "process `ID` (required)")
		asJSON := fs.Bool("json", false, "print the whole result as JSON")
		wait := fs.Bool("wait", false, "also wait until the messages the code sent, and their replies, are delivered")
		timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting after this long")
		return func(ctx context.Context, args []string) error {
			if err := checkID("--process", *process, "process", hintProcess); err != nil {
				return err
			}
			if err := needArgs(args, 1, "Lua CODE (in quotes)"); err != nil {
				return err
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
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			id, r, err := evalLua(ctx, c, *process, code)
			if err != nil {
				return cf.explain(processNotFound(err, *process))
			}
			if *wait {
				if err := c.WaitDelivered(ctx, id); err != nil {
					return cf.explain(err)
				}
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
backslash continues on the next line. .exit or Ctrl-D leaves. A process that cannot be
read is an error before the first prompt.`,
	flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
		cf := addClientFlags(fs, true, unitMU, unitCU)
		process := fs.String("process", "", "process `ID` (required)")
		return func(ctx context.Context, args []string) error {
			if err := checkID("--process", *process, "process", hintProcess); err != nil {
				return err
			}
			if err := needArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			return cf.explain(repl(ctx, c, *process, os.Stdin))
		}
	},
}

// inboxCheck is the Lua the repl dry-runs to show new Inbox messages.
func inboxCheck(from int) string {
	return `local t = {} for i = ` + strconv.Itoa(from) + `, #Inbox do local m = Inbox[i] ` +
		`t[#t+1] = {From = m.From, Action = m.Action, Data = m.Data} end ` +
		`return require("json").encode({n = #Inbox, m = t})`
}

func repl(ctx context.Context, c *client.Client, process string, in io.Reader) error {
	inboxSeen := -1
	prompt := "aos> "
	showInbox := func(ctx context.Context) error {
		// A fresh anchor each time: the CU caches dry-runs by their body, and a
		// cached answer would show an old Inbox.
		anchor := make([]byte, 16)
		rand.Read(anchor)
		r, err := c.DryRun(ctx, client.Message{Process: process, Tags: []client.Tag{{Name: "Action", Value: "Eval"}},
			Anchor: []byte(hex.EncodeToString(anchor)), Data: []byte(inboxCheck(max(inboxSeen, 0) + 1))})
		if err != nil {
			return err
		}
		if r.Failed() {
			return fmt.Errorf("process %s: %s", process, errorText(r))
		}
		if p := r.Prompt(); p != "" {
			prompt = p
		}
		var inbox struct {
			N int `json:"n"`
			M []struct{ From, Action, Data string }
		}
		if err := json.Unmarshal([]byte(r.OutputData()), &inbox); err != nil {
			return fmt.Errorf("process %s does not answer as aos does (%v): the repl needs an aos process", process, err)
		}
		if inboxSeen >= 0 {
			for _, m := range inbox.M {
				fmt.Fprintf(stdout, "New message from %s: Action = %s, Data = %s\n", m.From, m.Action, m.Data)
			}
		}
		inboxSeen = inbox.N
		return nil
	}
	if err := showInbox(ctx); err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status/100 == 4 {
			return fmt.Errorf("cannot open a repl on process %s: the CU cannot read it; check the id ('aonode spawn' prints it) "+
				"and that $CU_URL points at the network that spawned it\n  (%v)", process, err)
		}
		return fmt.Errorf("cannot open a repl on process %s: %w", process, err)
	}
	fmt.Fprint(stdout, prompt)
	// While the repl waits for a line, the Inbox is checked every second,
	// so a message that arrives meanwhile is shown within about a second.
	// mu orders the poller's output with the loop's; the poller is stopped
	// (its dry-run canceled) and waited for before repl returns, so that it
	// never writes after the command has ended.
	var mu sync.Mutex
	var code strings.Builder // a continued statement so far (guarded by mu)
	pollCtx, stopPolling := context.WithCancel(ctx)
	var poller sync.WaitGroup
	stop := func() { stopPolling(); poller.Wait() }
	defer stop()
	poller.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			before := inboxSeen
			if err := showInbox(pollCtx); err == nil && inboxSeen != before {
				// Show again the prompt the user was typing at.
				if code.Len() > 0 {
					fmt.Fprint(stdout, "... ")
				} else {
					fmt.Fprint(stdout, prompt)
				}
			}
			mu.Unlock()
		}
	})
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mu.Lock()
		line := sc.Text()
		if strings.HasSuffix(line, "\\") {
			code.WriteString(strings.TrimSuffix(line, "\\") + "\n")
			fmt.Fprint(stdout, "... ")
			mu.Unlock()
			continue
		}
		code.WriteString(line)
		src := strings.TrimSpace(code.String())
		code.Reset()
		if src == ".exit" {
			mu.Unlock()
			return nil
		}
		if src != "" {
			_, r, err := evalLua(ctx, c, process, src)
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
			if err := showInbox(ctx); err != nil {
				fmt.Fprintln(stderr, "error: reading the Inbox:", err)
			}
		}
		fmt.Fprint(stdout, prompt)
		mu.Unlock()
	}
	stop()
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
