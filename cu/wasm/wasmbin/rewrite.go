package wasmbin

import "fmt"

// AddFuncImport adds an import of function module.name with type index typ
// and returns its function index. The new import goes after the existing
// function imports, so every defined function's index grows by one; calls,
// ref.func, exports, the start function, element segments and the "name"
// section are renumbered to match.
func (m *Module) AddFuncImport(module, name string, typ uint32) (uint32, error) {
	if typ >= uint32(len(m.Types)) {
		return 0, fmt.Errorf("wasmbin: add import %s.%s: type %d out of range", module, name, typ)
	}
	idx := m.ImportedFuncs()
	shift := func(i uint32) uint32 {
		if i >= idx {
			return i + 1
		}
		return i
	}
	shiftCode := func(code []Instr) error {
		for i := range code {
			switch code[i].Op {
			case OpCall, OpReturnCall, OpRefFunc:
				f, err := code[i].Index()
				if err != nil {
					return err
				}
				if f >= idx {
					if err := code[i].SetIndex(f + 1); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	for i := range m.Code {
		if err := shiftCode(m.Code[i].Code); err != nil {
			return 0, fmt.Errorf("wasmbin: add import: function %d: %w", i, err)
		}
	}
	for i := range m.Globals {
		if err := shiftCode(m.Globals[i].Init); err != nil {
			return 0, fmt.Errorf("wasmbin: add import: global %d: %w", i, err)
		}
	}
	for i := range m.Exports {
		if m.Exports[i].Kind == KindFunc {
			m.Exports[i].Index = shift(m.Exports[i].Index)
		}
	}
	if m.Start != nil {
		s := shift(*m.Start)
		m.Start = &s
	}
	for i := range m.Elems {
		e := &m.Elems[i]
		for j := range e.Funcs {
			e.Funcs[j] = shift(e.Funcs[j])
		}
		for _, x := range e.Exprs {
			if err := shiftCode(x); err != nil {
				return 0, fmt.Errorf("wasmbin: add import: element %d: %w", i, err)
			}
		}
	}
	for i := range m.Customs {
		if m.Customs[i].Name != "name" {
			continue
		}
		if data, err := shiftNames(m.Customs[i].Data, shift); err == nil {
			m.Customs[i].Data = data
		} else {
			// Debug names only: better none than wrong ones.
			m.Customs = append(m.Customs[:i:i], m.Customs[i+1:]...)
			m.customOrig = nil
		}
		break
	}
	// Insert after the last function import (other kinds have their own
	// index spaces).
	at := 0
	for i, im := range m.Imports {
		if im.Kind == KindFunc {
			at = i + 1
		}
	}
	m.Imports = append(m.Imports[:at:at], append([]Import{{Module: module, Name: name, Kind: KindFunc, Type: typ}}, m.Imports[at:]...)...)
	return idx, nil
}

// shiftNames renumbers the function indices of the name section's function
// names (1) and local names (2) subsections.
func shiftNames(data []byte, shift func(uint32) uint32) ([]byte, error) {
	r := &reader{b: data}
	var out []byte
	for !r.eof() {
		id, _ := r.byte()
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		sub, err := r.bytes(uint64(n))
		if err != nil {
			return nil, err
		}
		if id == 1 || id == 2 {
			sr := &reader{b: sub}
			cnt, err := sr.count(2)
			if err != nil {
				return nil, err
			}
			nb := appendLEB(nil, uint64(cnt))
			for i := uint32(0); i < cnt; i++ {
				f, err := sr.u32()
				if err != nil {
					return nil, err
				}
				nb = appendLEB(nb, uint64(shift(f)))
				start := sr.pos
				if id == 1 {
					if _, err := sr.name(); err != nil {
						return nil, err
					}
				} else {
					k, err := sr.count(2)
					if err != nil {
						return nil, err
					}
					for j := uint32(0); j < k; j++ {
						if _, err := sr.u32(); err != nil {
							return nil, err
						}
						if _, err := sr.name(); err != nil {
							return nil, err
						}
					}
				}
				nb = append(nb, sub[start:sr.pos]...)
			}
			if !sr.eof() {
				return nil, sr.fail(sr.pos, "trailing bytes in name subsection %d", id)
			}
			sub = nb
		}
		out = append(out, id)
		out = appendLEB(out, uint64(len(sub)))
		out = append(out, sub...)
	}
	return out, nil
}

// AddGlobal appends a module-defined global and returns its index.
func (m *Module) AddGlobal(g Global) uint32 {
	m.Globals = append(m.Globals, g)
	return m.ImportedGlobals() + uint32(len(m.Globals)-1)
}
