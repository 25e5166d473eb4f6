package mu

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/aonode/aonode/ans104"
)

// Task kinds.
const (
	kindIngest  = "ingest"  // a user's item (or assignment) to its SU
	kindPull    = "pull"    // a CU result, whose outputs become tasks
	kindMessage = "message" // an outbox message: sign, then push
	kindReply   = "reply"   // the Spawned reply: sign, then push
	kindSpawn   = "spawn"   // an outbox spawn: sign, then push to its SU
	kindAssign  = "assign"  // an assignment to one process
)

func pullTask(pid, msgID, root string) *task {
	return &task{Key: "p:" + pid + ":" + msgID, Kind: kindPull, Queue: "p:" + pid, Process: pid, Ref: msgID, Root: root,
		Payload: payload{Pid: pid, MsgID: msgID}}
}

func assignTask(key, from, pid, txID string, baseLayer bool, exclude []string, root string) *task {
	return &task{Key: key, Kind: kindAssign, Queue: "q:" + from + ">" + pid, Process: pid, Ref: txID, Root: root,
		Payload: payload{Pid: pid, From: from, Assign: &OutAssignment{Processes: []string{pid}, Message: txID, BaseLayer: baseLayer, Exclude: exclude}}}
}

// outputTasks turns a result of process pid for srcID into tasks. Keys are
// derived from (pid, srcID, position), so enqueuing a result twice adds nothing.
func outputTasks(pid, srcID, root string, r *Result) []*task {
	var out []*task
	prefix := pid + ":" + srcID + ":"
	for i := range r.Messages {
		m := r.Messages[i]
		out = append(out, &task{Key: "m:" + prefix + strconv.Itoa(i), Kind: kindMessage, Queue: "q:" + pid + ">" + m.Target,
			Process: m.Target, Root: root, Payload: payload{From: pid, Msg: &m}})
	}
	for i := range r.Spawns {
		s := r.Spawns[i]
		out = append(out, &task{Key: "s:" + prefix + strconv.Itoa(i), Kind: kindSpawn, Queue: "q:" + pid + ">spawn",
			Process: pid, Root: root, Payload: payload{From: pid, Spawn: &s}})
	}
	for i, a := range r.Assignments {
		for j, p := range a.Processes {
			out = append(out, assignTask("a:"+prefix+strconv.Itoa(i)+":"+strconv.Itoa(j), pid, p, a.Message, a.BaseLayer, a.Exclude, root))
		}
	}
	return out
}

// exec runs one attempt of a task's current step.
func (s *Server) exec(ctx context.Context, t *task) ([]*task, error) {
	switch t.Kind {
	case kindIngest:
		return s.execIngest(ctx, t)
	case kindPull:
		return s.execPull(ctx, t)
	case kindMessage, kindReply:
		return s.execMessage(ctx, t)
	case kindSpawn:
		return s.execSpawn(ctx, t)
	case kindAssign:
		return s.execAssign(ctx, t)
	}
	return nil, permanent(http.StatusInternalServerError, fmt.Errorf("unknown task kind %q", t.Kind))
}

// locateErr makes "no such process" permanent for a user's first request
// (they are told at once) and retryable elsewhere.
func locateErr(err error, userFacing bool) error {
	if errors.Is(err, errNotProcess) || (userFacing && errors.Is(err, ErrNotFound)) {
		return permanent(http.StatusBadRequest, err)
	}
	return err
}

// refusal reports whether err is another unit's deterministic refusal of a
// request: sending the very same bytes again cannot succeed (413 too large,
// 422, an invalid item), so the step ends as failed instead of blocking its
// queue for ever. Everything else is retried: 5xx and transport errors, and
// the 4xx a retry can change (404 and the reference SU's 400 "… not found"
// before a process or transaction is published, 400 "Not enough
// confirmations", 408, 409, 425, 429, and 401/403 from a misconfigured proxy).
func refusal(err error) (*HTTPError, bool) {
	var he *HTTPError
	if !errors.As(err, &he) {
		return nil, false
	}
	switch he.Status {
	case http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusUnsupportedMediaType,
		http.StatusUnprocessableEntity, http.StatusRequestHeaderFieldsTooLarge:
		return he, true
	case http.StatusBadRequest:
		b := strings.ToLower(he.Body)
		for _, transient := range []string{"not found", "confirmation", "not available", "access denied"} {
			if strings.Contains(b, transient) {
				return he, false
			}
		}
		return he, true
	}
	return he, false
}

// unitErr classifies another unit's answer to a step. A user's own item
// (userFacing: the first attempt, which the submitter waits for) fails on any
// 4xx but 429, so they are told at once; later, and in the crank, only a
// refusal (see refusal) fails.
func unitErr(err error, userFacing bool) error {
	var he *HTTPError
	if userFacing && errors.As(err, &he) && he.Status/100 == 4 && he.Status != http.StatusTooManyRequests {
		return permanent(he.Status, fmt.Errorf("%d: %s", he.Status, he.Body))
	}
	if he, ok := refusal(err); ok {
		return permanent(he.Status, fmt.Errorf("refused: %w", err))
	}
	return err
}

func (s *Server) execIngest(ctx context.Context, t *task) ([]*task, error) {
	user := t.Attempts == 0
	if a := t.Payload.Assign; a != nil { // POST /?process-id=&assign=
		u, _, err := s.loc.locate(ctx, t.Payload.Pid)
		if err != nil {
			return nil, locateErr(err, user)
		}
		aid, err := s.su.Assign(ctx, u, t.Payload.Pid, a.Message, a.BaseLayer, a.Exclude)
		if err != nil {
			return nil, unitErr(err, user)
		}
		t.Ref = aid
		return []*task{pullTask(t.Payload.Pid, aid, t.Root)}, nil
	}
	item, err := ans104.Parse(t.Item)
	if err != nil {
		return nil, permanent(http.StatusBadRequest, err)
	}
	if t.Payload.Process {
		sched, _ := item.Tag("Scheduler")
		u, err := s.loc.schedulerURL(ctx, sched)
		if err != nil {
			if errors.Is(err, ErrNotFound) && user {
				return nil, permanent(http.StatusBadRequest, err)
			}
			return nil, err
		}
		id, err := s.su.Write(ctx, u, t.Item)
		if err != nil {
			return nil, unitErr(err, user)
		}
		if err := s.loc.remember(ctx, id, item.Tags); err != nil {
			return nil, err
		}
		var next []*task
		if s.cfg.SpawnPush {
			next = append(next, pullTask(id, id, t.Root))
		}
		if len(item.Target) == 32 {
			target := ans104.Base64URL(item.Target)
			next = append(next, assignTask("x:"+id+":"+target, id, target, id, false, nil, t.Root))
		}
		return next, nil
	}
	pid := ans104.Base64URL(item.Target)
	u, _, err := s.loc.locate(ctx, pid)
	if err != nil {
		return nil, locateErr(err, user)
	}
	id, err := s.su.Write(ctx, u, t.Item)
	if err != nil {
		return nil, unitErr(err, user)
	}
	return []*task{pullTask(pid, id, t.Root)}, nil
}

func (s *Server) execPull(ctx context.Context, t *task) ([]*task, error) {
	b, err := s.cu.Result(ctx, t.Payload.Pid, t.Payload.MsgID)
	if err != nil {
		return nil, err
	}
	r, err := ParseResult(b)
	if err != nil {
		return nil, err
	}
	return outputTasks(t.Payload.Pid, t.Payload.MsgID, t.Root, r), nil
}

// sign builds the item of a message, reply or spawn task once, and commits it
// before it is ever sent: every later attempt sends these exact bytes.
func (s *Server) sign(ctx context.Context, t *task, tmpl Template) (*ans104.DataItem, error) {
	item, err := tmpl.Sign(s.cfg.Signer)
	if err != nil {
		return nil, permanent(http.StatusBadRequest, fmt.Errorf("building the item: %w", err))
	}
	t.Item, t.Ref = item.Bytes(), item.ID()
	if err := s.st.saveItem(ctx, t); err != nil {
		t.Item = nil
		return nil, fmt.Errorf("saving the signed item: %w", err)
	}
	return item, nil
}

// moduleOf is the Module tag of a process ("" when it cannot be known).
func (s *Server) moduleOf(ctx context.Context, pid string) (string, error) {
	tags, err := s.loc.process(ctx, pid)
	if errors.Is(err, ErrNotFound) || errors.Is(err, errNotProcess) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	m, _ := tagValue(tags, "Module")
	return m, nil
}

func (s *Server) execMessage(ctx context.Context, t *task) ([]*task, error) {
	var assignTo []string
	if t.Kind == kindMessage {
		_, assignTo = MessageTemplate(*t.Payload.Msg, t.Payload.From, "", "")
	}
	if t.Item == nil {
		var tmpl Template
		if t.Kind == kindReply {
			tmpl = *t.Payload.Template
		} else {
			mod, err := s.moduleOf(ctx, t.Payload.From)
			if err != nil {
				return nil, err
			}
			tmpl, _ = MessageTemplate(*t.Payload.Msg, t.Payload.From, mod, t.Root)
		}
		if _, err := s.sign(ctx, t, tmpl); err != nil {
			return nil, err
		}
	}
	item, err := ans104.Parse(t.Item)
	if err != nil {
		return nil, permanent(http.StatusInternalServerError, fmt.Errorf("stored item: %w", err))
	}
	target := ans104.Base64URL(item.Target)
	u, _, err := s.loc.locate(ctx, target)
	if errors.Is(err, ErrNotFound) {
		// Not a transaction the gateway knows: a wallet. The message is kept
		// in the permanent store and the branch ends (units.md §4.4).
		if err := s.gw.Upload(ctx, t.Item); err != nil {
			return nil, unitErr(fmt.Errorf("storing message %s to wallet %s: %w", t.Ref, target, err), false)
		}
		return nil, nil
	}
	if err != nil {
		return nil, locateErr(err, false)
	}
	id, err := s.su.Write(ctx, u, t.Item)
	if err != nil {
		return nil, unitErr(fmt.Errorf("pushing message %s to %s: %w", t.Ref, target, err), false)
	}
	next := []*task{pullTask(target, id, t.Root)}
	for _, p := range assignTo {
		next = append(next, assignTask("x:"+id+":"+p, t.Payload.From, p, id, false, nil, t.Root))
	}
	return next, nil
}

func (s *Server) execSpawn(ctx context.Context, t *task) ([]*task, error) {
	from, sp := t.Payload.From, t.Payload.Spawn
	if t.Item == nil {
		tags, err := s.loc.process(ctx, from)
		if err != nil {
			return nil, fmt.Errorf("spawning process %s: %w", from, err)
		}
		mod, _ := tagValue(tags, "Module")
		sched, _ := tagValue(tags, "Scheduler")
		tmpl, err := SpawnTemplate(*sp, from, mod, sched, t.Root)
		if err != nil {
			return nil, permanent(http.StatusBadRequest, err)
		}
		if _, err := s.sign(ctx, t, tmpl); err != nil {
			return nil, err
		}
	}
	item, err := ans104.Parse(t.Item)
	if err != nil {
		return nil, permanent(http.StatusInternalServerError, fmt.Errorf("stored item: %w", err))
	}
	sched, _ := item.Tag("Scheduler")
	u, err := s.loc.schedulerURL(ctx, sched)
	if err != nil {
		return nil, err
	}
	pid, err := s.su.Write(ctx, u, t.Item)
	if err != nil {
		return nil, unitErr(fmt.Errorf("pushing spawn %s: %w", t.Ref, err), false)
	}
	if err := s.loc.remember(ctx, pid, item.Tags); err != nil {
		return nil, err
	}
	reply := SpawnedTemplate(*sp, from, pid)
	next := []*task{{Key: "r:" + t.Key, Kind: kindReply, Queue: "q:" + from + ">" + from, Process: from, Root: t.Root,
		Payload: payload{From: from, Template: &reply}}}
	if s.cfg.SpawnPush {
		next = append(next, pullTask(pid, pid, t.Root))
	}
	return next, nil
}

func (s *Server) execAssign(ctx context.Context, t *task) ([]*task, error) {
	a := t.Payload.Assign
	u, _, err := s.loc.locate(ctx, t.Payload.Pid)
	if err != nil {
		return nil, locateErr(err, false)
	}
	aid, err := s.su.Assign(ctx, u, t.Payload.Pid, a.Message, a.BaseLayer, a.Exclude)
	if err != nil {
		return nil, unitErr(fmt.Errorf("assigning %s to %s: %w", a.Message, t.Payload.Pid, err), false)
	}
	return []*task{pullTask(t.Payload.Pid, aid, t.Root)}, nil
}
