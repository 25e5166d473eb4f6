package wasmbin

import "fmt"

func (r *reader) valType() (ValType, error) {
	at := r.pos
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	if !isValType(c) {
		return 0, r.fail(at, "invalid value type 0x%02x", c)
	}
	return ValType(c), nil
}

func (r *reader) valTypes() ([]ValType, error) {
	n, err := r.count(1)
	if err != nil {
		return nil, err
	}
	v := make([]ValType, n)
	for i := range v {
		if v[i], err = r.valType(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (r *reader) limits() (Limits, error) {
	at := r.pos
	var l Limits
	var err error
	if l.Flags, err = r.byte(); err != nil {
		return l, err
	}
	if l.Flags > 7 {
		return l, r.fail(at, "invalid limits flags 0x%02x", l.Flags)
	}
	bits := uint(32)
	if l.Is64() {
		bits = 64
	}
	if l.Min, err = r.leb(bits); err != nil {
		return l, err
	}
	if l.HasMax() {
		l.Max, err = r.leb(bits)
	}
	return l, err
}

func (r *reader) table() (Table, error) {
	at := r.pos
	t, err := r.valType()
	if err != nil {
		return Table{}, err
	}
	if t != FuncRef && t != ExternRef {
		return Table{}, r.fail(at, "invalid table element type 0x%02x", byte(t))
	}
	l, err := r.limits()
	return Table{Elem: t, Limits: l}, err
}

func (r *reader) globalType() (GlobalType, error) {
	t, err := r.valType()
	if err != nil {
		return GlobalType{}, err
	}
	at := r.pos
	mut, err := r.byte()
	if err == nil && mut > 1 {
		err = r.fail(at, "invalid mutability 0x%02x", mut)
	}
	return GlobalType{Type: t, Mutable: mut == 1}, err
}

// expr reads a constant expression up to and including its end.
func (r *reader) expr() ([]Instr, error) {
	var code []Instr
	for {
		in, err := decodeInstr(r)
		if err != nil {
			return nil, err
		}
		code = append(code, in)
		if in.Op == OpEnd {
			return code, nil
		}
	}
}

func (r *reader) index() (uint32, error) { return r.u32() }

func (m *Module) decodeSection(id byte, r *reader) error {
	switch id {
	case SecType:
		n, err := r.count(3)
		if err != nil {
			return err
		}
		m.Types = make([]FuncType, n)
		for i := range m.Types {
			at := r.pos
			if c, err := r.byte(); err != nil {
				return err
			} else if c != 0x60 {
				return r.fail(at, "unsupported type form 0x%02x", c)
			}
			t := &m.Types[i]
			if t.Params, err = r.valTypes(); err != nil {
				return err
			}
			if t.Results, err = r.valTypes(); err != nil {
				return err
			}
		}
	case SecImport:
		n, err := r.count(4)
		if err != nil {
			return err
		}
		m.Imports = make([]Import, n)
		for i := range m.Imports {
			im := &m.Imports[i]
			if im.Module, err = r.name(); err != nil {
				return err
			}
			if im.Name, err = r.name(); err != nil {
				return err
			}
			at := r.pos
			if im.Kind, err = r.byte(); err != nil {
				return err
			}
			switch im.Kind {
			case KindFunc:
				im.Type, err = r.index()
			case KindTable:
				im.Table, err = r.table()
			case KindMemory:
				im.Memory, err = r.limits()
			case KindGlobal:
				im.Global, err = r.globalType()
			default:
				return r.fail(at, "unsupported import kind 0x%02x", im.Kind)
			}
			if err != nil {
				return err
			}
		}
	case SecFunction:
		n, err := r.count(1)
		if err != nil {
			return err
		}
		m.Funcs = make([]uint32, n)
		for i := range m.Funcs {
			if m.Funcs[i], err = r.index(); err != nil {
				return err
			}
		}
	case SecTable:
		n, err := r.count(3)
		if err != nil {
			return err
		}
		m.Tables = make([]Table, n)
		for i := range m.Tables {
			if m.Tables[i], err = r.table(); err != nil {
				return err
			}
		}
	case SecMemory:
		n, err := r.count(2)
		if err != nil {
			return err
		}
		m.Memories = make([]Limits, n)
		for i := range m.Memories {
			if m.Memories[i], err = r.limits(); err != nil {
				return err
			}
		}
	case SecGlobal:
		n, err := r.count(3)
		if err != nil {
			return err
		}
		m.Globals = make([]Global, n)
		for i := range m.Globals {
			g := &m.Globals[i]
			if g.Type, err = r.globalType(); err != nil {
				return err
			}
			if g.Init, err = r.expr(); err != nil {
				return err
			}
		}
	case SecExport:
		n, err := r.count(3)
		if err != nil {
			return err
		}
		m.Exports = make([]Export, n)
		for i := range m.Exports {
			e := &m.Exports[i]
			if e.Name, err = r.name(); err != nil {
				return err
			}
			at := r.pos
			if e.Kind, err = r.byte(); err != nil {
				return err
			}
			if e.Kind > KindGlobal {
				return r.fail(at, "unsupported export kind 0x%02x", e.Kind)
			}
			if e.Index, err = r.index(); err != nil {
				return err
			}
		}
	case SecStart:
		s, err := r.index()
		if err != nil {
			return err
		}
		m.Start = &s
	case SecElement:
		return m.decodeElems(r)
	case SecDataCount:
		c, err := r.u32()
		if err != nil {
			return err
		}
		m.DataCount = &c
	case SecCode:
		return m.decodeCode(r)
	case SecData:
		n, err := r.count(2)
		if err != nil {
			return err
		}
		m.Data = make([]Data, n)
		for i := range m.Data {
			d := &m.Data[i]
			at := r.pos
			if d.Flags, err = r.u32(); err != nil {
				return err
			}
			switch d.Flags {
			case 0:
				d.Offset, err = r.expr()
			case 1:
			case 2:
				if d.Memory, err = r.index(); err == nil {
					d.Offset, err = r.expr()
				}
			default:
				return r.fail(at, "invalid data segment flags %d", d.Flags)
			}
			if err != nil {
				return err
			}
			l, err := r.u32()
			if err != nil {
				return err
			}
			if d.Init, err = r.bytes(uint64(l)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Module) decodeElems(r *reader) error {
	n, err := r.count(3)
	if err != nil {
		return err
	}
	m.Elems = make([]Elem, n)
	for i := range m.Elems {
		e := &m.Elems[i]
		at := r.pos
		if e.Flags, err = r.u32(); err != nil {
			return err
		}
		if e.Flags > 7 {
			return r.fail(at, "invalid element segment flags %d", e.Flags)
		}
		if e.Flags&3 == 2 {
			if e.Table, err = r.index(); err != nil {
				return err
			}
		}
		if e.Flags&1 == 0 { // active
			if e.Offset, err = r.expr(); err != nil {
				return err
			}
		}
		if e.Flags&3 != 0 { // explicit elemkind / reftype
			if e.Kind, err = r.byte(); err != nil {
				return err
			}
		}
		cnt, err := r.count(1)
		if err != nil {
			return err
		}
		if e.Flags&4 == 0 {
			e.Funcs = make([]uint32, cnt)
			for j := range e.Funcs {
				if e.Funcs[j], err = r.index(); err != nil {
					return err
				}
			}
		} else {
			e.Exprs = make([][]Instr, cnt)
			for j := range e.Exprs {
				if e.Exprs[j], err = r.expr(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (m *Module) decodeCode(r *reader) error {
	n, err := r.count(2)
	if err != nil {
		return err
	}
	m.Code = make([]Func, n)
	for i := range m.Code {
		size, err := r.u32()
		if err != nil {
			return err
		}
		body, err := r.bytes(uint64(size))
		if err != nil {
			return err
		}
		br := &reader{b: body, base: r.base + r.pos - len(body)}
		f := &m.Code[i]
		nl, err := br.count(2)
		if err != nil {
			return fmt.Errorf("function %d: %w", i, err)
		}
		f.Locals = make([]Locals, nl)
		for j := range f.Locals {
			if f.Locals[j].N, err = br.u32(); err != nil {
				return err
			}
			if f.Locals[j].Type, err = br.valType(); err != nil {
				return err
			}
		}
		// Most instructions take 1–3 bytes; guessing saves regrowing.
		f.Code = make([]Instr, 0, (len(body)-br.pos)/2+1)
		for !br.eof() {
			in, err := decodeInstr(br)
			if err != nil {
				return fmt.Errorf("function %d: %w", i, err)
			}
			f.Code = append(f.Code, in)
		}
		if len(f.Code) == 0 || f.Code[len(f.Code)-1].Op != OpEnd {
			return br.fail(br.pos, "function %d: body does not end with end", i)
		}
	}
	return nil
}

func appendLimits(b []byte, l Limits) []byte {
	b = append(b, l.Flags)
	b = appendLEB(b, l.Min)
	if l.HasMax() {
		b = appendLEB(b, l.Max)
	}
	return b
}

func appendValTypes(b []byte, v []ValType) []byte {
	b = appendLEB(b, uint64(len(v)))
	for _, t := range v {
		b = append(b, byte(t))
	}
	return b
}

func appendGlobalType(b []byte, g GlobalType) []byte {
	b = append(b, byte(g.Type))
	if g.Mutable {
		return append(b, 1)
	}
	return append(b, 0)
}

// encodeSection appends the canonical payload of a known section.
func (m *Module) encodeSection(b []byte, id byte) []byte {
	switch id {
	case SecType:
		b = appendLEB(b, uint64(len(m.Types)))
		for _, t := range m.Types {
			b = append(b, 0x60)
			b = appendValTypes(b, t.Params)
			b = appendValTypes(b, t.Results)
		}
	case SecImport:
		b = appendLEB(b, uint64(len(m.Imports)))
		for _, im := range m.Imports {
			b = appendName(b, im.Module)
			b = appendName(b, im.Name)
			b = append(b, im.Kind)
			switch im.Kind {
			case KindFunc:
				b = appendLEB(b, uint64(im.Type))
			case KindTable:
				b = append(b, byte(im.Table.Elem))
				b = appendLimits(b, im.Table.Limits)
			case KindMemory:
				b = appendLimits(b, im.Memory)
			case KindGlobal:
				b = appendGlobalType(b, im.Global)
			}
		}
	case SecFunction:
		b = appendLEB(b, uint64(len(m.Funcs)))
		for _, t := range m.Funcs {
			b = appendLEB(b, uint64(t))
		}
	case SecTable:
		b = appendLEB(b, uint64(len(m.Tables)))
		for _, t := range m.Tables {
			b = append(b, byte(t.Elem))
			b = appendLimits(b, t.Limits)
		}
	case SecMemory:
		b = appendLEB(b, uint64(len(m.Memories)))
		for _, l := range m.Memories {
			b = appendLimits(b, l)
		}
	case SecGlobal:
		b = appendLEB(b, uint64(len(m.Globals)))
		for _, g := range m.Globals {
			b = appendGlobalType(b, g.Type)
			b = AppendInstrs(b, g.Init)
		}
	case SecExport:
		b = appendLEB(b, uint64(len(m.Exports)))
		for _, e := range m.Exports {
			b = appendName(b, e.Name)
			b = append(b, e.Kind)
			b = appendLEB(b, uint64(e.Index))
		}
	case SecStart:
		if m.Start != nil {
			b = appendLEB(b, uint64(*m.Start))
		}
	case SecElement:
		b = appendLEB(b, uint64(len(m.Elems)))
		for _, e := range m.Elems {
			b = appendLEB(b, uint64(e.Flags))
			if e.Flags&3 == 2 {
				b = appendLEB(b, uint64(e.Table))
			}
			if e.Flags&1 == 0 {
				b = AppendInstrs(b, e.Offset)
			}
			if e.Flags&3 != 0 {
				b = append(b, e.Kind)
			}
			if e.Flags&4 == 0 {
				b = appendLEB(b, uint64(len(e.Funcs)))
				for _, f := range e.Funcs {
					b = appendLEB(b, uint64(f))
				}
			} else {
				b = appendLEB(b, uint64(len(e.Exprs)))
				for _, x := range e.Exprs {
					b = AppendInstrs(b, x)
				}
			}
		}
	case SecDataCount:
		if m.DataCount != nil {
			b = appendLEB(b, uint64(*m.DataCount))
		}
	case SecCode:
		b = appendLEB(b, uint64(len(m.Code)))
		var body []byte
		for _, f := range m.Code {
			body = appendLEB(body[:0], uint64(len(f.Locals)))
			for _, l := range f.Locals {
				body = appendLEB(body, uint64(l.N))
				body = append(body, byte(l.Type))
			}
			body = AppendInstrs(body, f.Code)
			b = appendLEB(b, uint64(len(body)))
			b = append(b, body...)
		}
	case SecData:
		b = appendLEB(b, uint64(len(m.Data)))
		for _, d := range m.Data {
			b = appendLEB(b, uint64(d.Flags))
			if d.Flags == 2 {
				b = appendLEB(b, uint64(d.Memory))
			}
			if d.Flags != 1 {
				b = AppendInstrs(b, d.Offset)
			}
			b = appendLEB(b, uint64(len(d.Init)))
			b = append(b, d.Init...)
		}
	}
	return b
}
