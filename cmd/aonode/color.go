package main

import (
	"io"
	"os"
)

// plainUnlessColor returns w itself when colour may reach a person (w is a
// terminal and NO_COLOR is unset or empty, see no-color.org), else a writer
// that drops ANSI escape sequences. aos puts colour codes in its prompts and
// in what Lua prints; a pipe, a file or a script should get plain text.
func plainUnlessColor(w io.Writer) io.Writer {
	if _, ok := w.(*plainWriter); ok {
		return w
	}
	if os.Getenv("NO_COLOR") == "" && isTerminal(w) {
		return w
	}
	return &plainWriter{w: w}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// plainWriter removes escape sequences (ESC [ … final byte, ESC ] … BEL or
// ESC \, and two-byte ESC x), also when one is split across writes.
type plainWriter struct {
	w     io.Writer
	state byte // 0 text, 1 after ESC, 2 in CSI, 3 in OSC, 4 ESC inside OSC
	buf   []byte
}

func (p *plainWriter) Write(b []byte) (int, error) {
	p.buf = p.buf[:0]
	for _, c := range b {
		switch p.state {
		case 0:
			if c == 0x1b {
				p.state = 1
			} else {
				p.buf = append(p.buf, c)
			}
		case 1:
			switch c {
			case '[':
				p.state = 2
			case ']':
				p.state = 3
			default:
				p.state = 0
			}
		case 2:
			if c >= 0x40 && c <= 0x7e {
				p.state = 0
			}
		case 3:
			if c == 0x07 {
				p.state = 0
			} else if c == 0x1b {
				p.state = 4
			}
		case 4:
			p.state = 0
			if c != '\\' {
				p.state = 3
			}
		}
	}
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}
