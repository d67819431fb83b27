package classify

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenKind uint8

const (
	tkEOF      tokenKind = iota
	tkIdent              // disks, in, contains, true, label, ...
	tkNum                // 8, 1.5, -1
	tkStr                // "a" or 'a' (text holds the decoded value)
	tkLabelKey           // rack in label.rack (text holds the key)
	tkOp                 // || && ! == != < <= > >= =~ ( ) [ ] ,
)

type token struct {
	kind tokenKind
	text string
	num  float64
	col  int
}

// describe names a token in an error message.
func (t token) describe() string {
	switch t.kind {
	case tkEOF:
		return "end of input"
	case tkStr:
		return quote(t.text)
	case tkNum:
		return formatNum(t.num)
	case tkLabelKey:
		return "label." + t.text
	}
	return fmt.Sprintf("%q", t.text)
}

// lexer splits an expression into tokens. Columns count runes, 1-based.
type lexer struct {
	src string
	pos int // byte offset
	col int // column of pos
}

func lex(src string) ([]token, error) {
	lx := &lexer{src: src, col: 1}
	var toks []token
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tkEOF {
			return toks, nil
		}
	}
}

// advance moves n bytes forward.
func (lx *lexer) advance(n int) {
	lx.col += utf8.RuneCountInString(lx.src[lx.pos : lx.pos+n])
	lx.pos += n
}

func (lx *lexer) peek(off int) byte {
	if lx.pos+off < len(lx.src) {
		return lx.src[lx.pos+off]
	}
	return 0
}

func isSpace(c byte) bool  { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isIdent(c byte) bool  { return isLetter(c) || isDigit(c) }

// isKeyChar reports whether c may appear in a key written label.KEY.
func isKeyChar(c byte) bool { return isIdent(c) || c == '-' || c == '.' || c == '/' }

// twoCharOps are checked before single characters.
var twoCharOps = []string{"||", "&&", "==", "!=", "<=", ">=", "=~"}

func (lx *lexer) next() (token, error) {
	for lx.pos < len(lx.src) && isSpace(lx.src[lx.pos]) {
		lx.advance(1)
	}
	col := lx.col
	if lx.pos >= len(lx.src) {
		return token{kind: tkEOF, col: col}, nil
	}
	c := lx.src[lx.pos]
	rest := lx.src[lx.pos:]
	for _, op := range twoCharOps {
		if strings.HasPrefix(rest, op) {
			lx.advance(2)
			return token{kind: tkOp, text: op, col: col}, nil
		}
	}
	switch {
	case strings.ContainsRune("!<>()[],", rune(c)):
		lx.advance(1)
		return token{kind: tkOp, text: string(c), col: col}, nil
	case c == '"' || c == '\'':
		return lx.str(c)
	case isDigit(c) || c == '-' && isDigit(lx.peek(1)):
		return lx.number()
	case isLetter(c):
		start := lx.pos
		for lx.pos < len(lx.src) && isIdent(lx.src[lx.pos]) {
			lx.advance(1)
		}
		word := lx.src[start:lx.pos]
		if word == "label" && lx.peek(0) == '.' {
			lx.advance(1)
			kstart := lx.pos
			for lx.pos < len(lx.src) && isKeyChar(lx.src[lx.pos]) {
				lx.advance(1)
			}
			if lx.pos == kstart {
				return token{}, &Error{Column: lx.col, Msg: `expected a label key after "label.", like label.rack`}
			}
			return token{kind: tkLabelKey, text: lx.src[kstart:lx.pos], col: col}, nil
		}
		if word == "labels" && lx.peek(0) == '.' {
			return token{}, &Error{Column: col, Msg: `write label.KEY or labels["KEY"], not labels.KEY`}
		}
		return token{kind: tkIdent, text: word, col: col}, nil
	}
	r, _ := utf8.DecodeRuneInString(rest)
	msg := fmt.Sprintf("unexpected character %q", string(r))
	switch c {
	case '&':
		msg += `; did you mean "&&"?`
	case '|':
		msg += `; did you mean "||"?`
	case '=':
		msg += `; did you mean "=="?`
	}
	return token{}, &Error{Column: col, Msg: msg}
}

// str lexes a quoted string. \" \' and \\ are escapes; a backslash before
// any other character is kept, so regular expressions like "\d+" need no
// doubling.
func (lx *lexer) str(q byte) (token, error) {
	col := lx.col
	lx.advance(1)
	var b strings.Builder
	for {
		if lx.pos >= len(lx.src) {
			return token{}, &Error{Column: col, Msg: "unterminated string"}
		}
		c := lx.src[lx.pos]
		switch {
		case c == q:
			lx.advance(1)
			return token{kind: tkStr, text: b.String(), col: col}, nil
		case c == '\\' && (lx.peek(1) == '"' || lx.peek(1) == '\'' || lx.peek(1) == '\\'):
			b.WriteByte(lx.peek(1))
			lx.advance(2)
		default:
			_, n := utf8.DecodeRuneInString(lx.src[lx.pos:])
			b.WriteString(lx.src[lx.pos : lx.pos+n])
			lx.advance(n)
		}
	}
}

// number lexes -?digits(.digits)?.
func (lx *lexer) number() (token, error) {
	col := lx.col
	start := lx.pos
	if lx.peek(0) == '-' {
		lx.advance(1)
	}
	for isDigit(lx.peek(0)) {
		lx.advance(1)
	}
	if lx.peek(0) == '.' {
		lx.advance(1)
		if !isDigit(lx.peek(0)) {
			return token{}, &Error{Column: col, Msg: fmt.Sprintf("bad number %q: expected a digit after the decimal point", lx.src[start:lx.pos])}
		}
		for isDigit(lx.peek(0)) {
			lx.advance(1)
		}
	}
	if isLetter(lx.peek(0)) || lx.peek(0) == '.' {
		for lx.pos < len(lx.src) && (isIdent(lx.src[lx.pos]) || lx.src[lx.pos] == '.') {
			lx.advance(1)
		}
		return token{}, &Error{Column: col, Msg: fmt.Sprintf("bad number %q: numbers have no units (memory_gib and disk_gib are in GiB)", lx.src[start:lx.pos])}
	}
	text := lx.src[start:lx.pos]
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(v, 0) {
		return token{}, &Error{Column: col, Msg: fmt.Sprintf("number %s is out of range", abbrev(text))}
	}
	return token{kind: tkNum, num: v, col: col}, nil
}

// abbrev shortens s for an error message, at a character boundary.
func abbrev(s string) string {
	if utf8.RuneCountInString(s) <= 24 {
		return s
	}
	n := 0
	for i := range s {
		if n == 20 {
			return s[:i] + "..."
		}
		n++
	}
	return s
}

// formatNum is the canonical text of a number: the shortest decimal that
// reads back as the same value, never with an exponent.
func formatNum(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// quote is the canonical text of a string literal: double quotes, with "
// escaped, and a backslash doubled only where it would otherwise start an
// escape (before ", ' or \, or at the end).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			if i+1 == len(s) || s[i+1] == '"' || s[i+1] == '\'' || s[i+1] == '\\' {
				b.WriteString(`\\`)
			} else {
				b.WriteByte('\\')
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
