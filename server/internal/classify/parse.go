package classify

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// Expr is a parsed, type-checked match expression. It is immutable and
// safe for concurrent use.
type Expr struct {
	root node
}

// Parse parses and checks a match expression. Errors name the column and
// what was wrong, wrap ErrSyntax, and type errors also wrap ErrType; their
// dynamic type is *Error.
func Parse(src string) (*Expr, error) {
	return parse(src, MaxLength)
}

// parse is Parse with a length limit (tests reparse canonical forms, which
// may be longer than their source, without it).
func parse(src string, maxLen int) (*Expr, error) {
	if len(src) > maxLen {
		return nil, &Error{Msg: fmt.Sprintf("expression is %d bytes long; the limit is %d", len(src), maxLen)}
	}
	if !utf8.ValidString(src) {
		bad := 0
		for bad < len(src) {
			r, n := utf8.DecodeRuneInString(src[bad:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			bad += n
		}
		return nil, &Error{Column: utf8.RuneCountInString(src[:bad]) + 1, Msg: "expression is not valid UTF-8"}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tkEOF {
		if isCmpOp(t) {
			return nil, &Error{Column: t.col, Msg: fmt.Sprintf("comparisons cannot be chained: %s follows a comparison; join comparisons with &&", t.describe())}
		}
		return nil, &Error{Column: t.col, Msg: fmt.Sprintf("unexpected %s; expected an operator or the end of the expression", t.describe())}
	}
	if err := condition(root); err != nil {
		return nil, err
	}
	if err := checkDepth(root, 0); err != nil {
		return nil, err
	}
	return &Expr{root: root}, nil
}

// Eval reports whether the expression holds for f. It never fails; a nil
// Expr is false.
func (e *Expr) Eval(f Facts) bool {
	if e == nil || e.root == nil {
		return false
	}
	return e.root.eval(&f).b
}

// String returns the canonical form: single spaces around binary
// operators, double-quoted strings, the fewest parentheses (but always
// around a comparison under !), numbers without trailing zeros, and
// literals compared with MACs or the UUID in lowercase. Parsing the
// canonical form gives the same canonical form.
func (e *Expr) String() string {
	if e == nil || e.root == nil {
		return ""
	}
	var b strings.Builder
	e.root.write(&b)
	return b.String()
}

type parser struct {
	toks []token
	i    int
	nest int // open parentheses and ! around the current token
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tkEOF {
		p.i++
	}
	return t
}

func isOp(t token, op string) bool { return t.kind == tkOp && t.text == op }

func isCmpOp(t token) bool {
	switch {
	case t.kind == tkOp:
		switch t.text {
		case "==", "!=", "<", "<=", ">", ">=", "=~":
			return true
		}
	case t.kind == tkIdent:
		return t.text == "in" || t.text == "contains"
	}
	return false
}

// enter counts one level of nesting (a parenthesis or a !). It bounds the
// parser's recursion; checkDepth bounds the checked tree.
func (p *parser) enter(t token) error {
	p.nest++
	if p.nest > 2*MaxDepth {
		return depthError(t.col)
	}
	return nil
}

func depthError(col int) error {
	return &Error{Column: col, Msg: fmt.Sprintf("expression nests deeper than %d levels", MaxDepth)}
}

// checkDepth rejects trees with more than MaxDepth operators on one path.
func checkDepth(n node, d int) error {
	var kids []node
	switch n := n.(type) {
	case *logicNode:
		kids = n.kids
	case *notNode:
		kids = []node{n.x}
	case *cmpNode:
		kids = []node{n.l, n.r}
	default:
		return nil
	}
	if d++; d > MaxDepth {
		return depthError(n.column())
	}
	for _, k := range kids {
		if err := checkDepth(k, d); err != nil {
			return err
		}
	}
	return nil
}

// or parses a || chain.
func (p *parser) or() (node, error) {
	return p.chain("||", true, p.and)
}

// and parses a && chain.
func (p *parser) and() (node, error) {
	return p.chain("&&", false, p.not)
}

func (p *parser) chain(op string, or bool, sub func() (node, error)) (node, error) {
	first, err := sub()
	if err != nil || !isOp(p.peek(), op) {
		return first, err
	}
	n := &logicNode{or: or, col: first.column()}
	add := func(k node) error {
		if err := condition(k); err != nil {
			return err
		}
		if l, ok := k.(*logicNode); ok && l.or == or {
			n.kids = append(n.kids, l.kids...)
		} else {
			n.kids = append(n.kids, k)
		}
		return nil
	}
	if err := add(first); err != nil {
		return nil, err
	}
	for isOp(p.peek(), op) {
		p.next()
		k, err := sub()
		if err != nil {
			return nil, err
		}
		if err := add(k); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// not parses prefix !, which binds less tightly than comparisons.
func (p *parser) not() (node, error) {
	t := p.peek()
	if !isOp(t, "!") {
		return p.comparison()
	}
	p.next()
	if err := p.enter(t); err != nil {
		return nil, err
	}
	x, err := p.not()
	if err != nil {
		return nil, err
	}
	p.nest--
	if err := condition(x); err != nil {
		return nil, err
	}
	return &notNode{x: x, col: t.col}, nil
}

func (p *parser) comparison() (node, error) {
	l, err := p.primary(false)
	if err != nil {
		return nil, err
	}
	op := p.peek()
	if !isCmpOp(op) {
		return l, nil
	}
	p.next()
	r, err := p.primary(op.text == "in")
	if err != nil {
		return nil, err
	}
	return compare(op, l, r)
}

// primary parses a value: a literal, a fact, a label, has_label(...), a
// list (only where allowed) or a parenthesised expression.
func (p *parser) primary(listOK bool) (node, error) {
	t := p.next()
	switch t.kind {
	case tkNum:
		return &numLit{v: t.num, col: t.col}, nil
	case tkStr:
		return &strLit{v: t.text, col: t.col}, nil
	case tkLabelKey:
		return &labelNode{key: t.text, col: t.col}, nil
	case tkIdent:
		return p.ident(t)
	case tkOp:
		switch t.text {
		case "(":
			if err := p.enter(t); err != nil {
				return nil, err
			}
			x, err := p.or()
			if err != nil {
				return nil, err
			}
			if c := p.next(); !isOp(c, ")") {
				if isCmpOp(c) {
					return nil, &Error{Column: c.col, Msg: fmt.Sprintf("comparisons cannot be chained: %s follows a comparison; join comparisons with &&", c.describe())}
				}
				return nil, &Error{Column: c.col, Msg: fmt.Sprintf(`expected ")" to close "(" at column %d, found %s`, t.col, c.describe())}
			}
			p.nest--
			return x, nil
		case "[":
			if !listOK {
				return nil, &Error{Column: t.col, Msg: `a list is only allowed right of "in"`}
			}
			return p.list(t)
		}
	}
	return nil, &Error{Column: t.col, Msg: "expected expression, found " + t.describe()}
}

func (p *parser) ident(t token) (node, error) {
	switch t.text {
	case "true", "false":
		return &boolLit{v: t.text == "true", col: t.col}, nil
	case "in", "contains":
		return nil, &Error{Column: t.col, Msg: "expected expression, found " + t.describe()}
	case "label":
		return nil, &Error{Column: t.col, Msg: `label needs a key: label.rack or labels["rack"]`}
	case "labels":
		if !isOp(p.peek(), "[") {
			return nil, &Error{Column: t.col, Msg: `labels needs a key in brackets: labels["rack"]`}
		}
		p.next()
		key, err := p.keyArg(`labels["rack"]`)
		if err != nil {
			return nil, err
		}
		if c := p.next(); !isOp(c, "]") {
			return nil, &Error{Column: c.col, Msg: fmt.Sprintf(`expected "]" after the label key, found %s`, c.describe())}
		}
		return &labelNode{key: key, col: t.col}, nil
	case "has_label":
		if c := p.next(); !isOp(c, "(") {
			return nil, &Error{Column: c.col, Msg: fmt.Sprintf(`expected "(" after has_label, found %s`, c.describe())}
		}
		key, err := p.keyArg(`has_label("rack")`)
		if err != nil {
			return nil, err
		}
		if c := p.next(); !isOp(c, ")") {
			return nil, &Error{Column: c.col, Msg: fmt.Sprintf(`expected ")" after the label key, found %s`, c.describe())}
		}
		return &hasLabelNode{key: key, col: t.col}, nil
	}
	if i, ok := factIndex[t.text]; ok {
		return &factNode{idx: i, col: t.col}, nil
	}
	return nil, &Error{Column: t.col, Msg: unknownFact(t.text)}
}

// keyArg reads the quoted label key of labels[...] or has_label(...).
func (p *parser) keyArg(example string) (string, error) {
	k := p.next()
	if k.kind != tkStr {
		return "", &Error{Column: k.col, Msg: fmt.Sprintf("expected a quoted label key, like %s, found %s", example, k.describe())}
	}
	if k.text == "" {
		return "", &Error{Column: k.col, Msg: "label key must not be empty"}
	}
	return k.text, nil
}

// list parses the rest of [a, b, ...]: numbers or strings, not mixed; a
// trailing comma is allowed.
func (p *parser) list(open token) (node, error) {
	l := &listLit{col: open.col}
	for {
		t := p.next()
		if isOp(t, "]") {
			return l, nil
		}
		var k kind
		switch t.kind {
		case tkNum:
			k = kNum
			l.nums = append(l.nums, t.num)
		case tkStr:
			k = kStr
			l.strs = append(l.strs, t.text)
		default:
			return nil, &Error{Column: t.col, Msg: "expected a number or a quoted string in the list, found " + t.describe()}
		}
		if l.elem != 0 && l.elem != k {
			return nil, &Error{Column: t.col, Msg: "list mixes numbers and strings", Type: true}
		}
		l.elem = k
		switch c := p.next(); {
		case isOp(c, "]"):
			return l, nil
		case !isOp(c, ","):
			return nil, &Error{Column: c.col, Msg: fmt.Sprintf(`expected "," or "]" in the list, found %s`, c.describe())}
		}
	}
}

// describe names an operand in an error message, with its kind.
func describe(n node) string {
	var b strings.Builder
	n.write(&b)
	return fmt.Sprintf("%s (%s)", abbrev(b.String()), n.kind())
}

// condition checks that n can be used as a condition.
func condition(n node) error {
	if n.kind() == kBool {
		return nil
	}
	return &Error{Column: n.column(), Type: true, Msg: fmt.Sprintf("%s is not a condition; compare it with a value", describe(n))}
}

// compare type-checks one comparison.
func compare(op token, l, r node) (node, error) {
	n := &cmpNode{op: op.text, l: l, r: r, col: op.col}
	lk, rk := l.kind(), r.kind()
	typeErr := func(format string, args ...any) error {
		return &Error{Column: op.col, Type: true, Msg: fmt.Sprintf(format, args...)}
	}
	mismatch := func() error {
		return typeErr("cannot compare %s with %s", describe(l), describe(r))
	}
	stringy := func(k kind) bool { return k == kStr || k == kList }
	switch n.op {
	case "==", "!=":
		if !(lk == rk && lk != kList || lk == kList && rk == kStr || lk == kStr && rk == kList) {
			return nil, mismatch()
		}
	case "<", "<=", ">", ">=":
		if lk == kNum && rk == kNum {
			break
		}
		if stringy(lk) && stringy(rk) {
			return nil, typeErr("%q compares numbers only, not %s and %s; strings support ==, !=, =~, in and contains", n.op, describe(l), describe(r))
		}
		return nil, mismatch()
	case "=~":
		s, ok := r.(*strLit)
		if !ok {
			return nil, typeErr(`right of "=~" must be a quoted regular expression, found %s`, describe(r))
		}
		if !stringy(lk) {
			return nil, typeErr(`"=~" matches strings, not %s`, describe(l))
		}
		re, err := regexp.Compile(s.v)
		if err != nil {
			var se *syntax.Error
			if errors.As(err, &se) {
				err = fmt.Errorf("%s: `%s`", se.Code, se.Expr)
			}
			return nil, &Error{Column: r.column(), Msg: fmt.Sprintf("bad regular expression %s: %v", quote(s.v), err)}
		}
		n.re = re
	case "contains":
		if !stringy(lk) || rk != kStr {
			return nil, typeErr(`"contains" looks for a string in a string or a list, not %s in %s`, describe(r), describe(l))
		}
	case "in":
		switch {
		case rk == kList:
			if lk != kStr {
				return nil, typeErr(`cannot look for %s in %s; "in" with a list fact needs a string on the left`, describe(l), describe(r))
			}
		case rk == kLitList:
			elem := r.(*listLit).elem
			if lk != kNum && !stringy(lk) || elem == kNum && lk != kNum || elem == kStr && !stringy(lk) {
				what := "an empty list"
				if elem != 0 {
					what = "a list of " + elem.String() + "s"
				}
				return nil, typeErr("cannot look for %s in %s", describe(l), what)
			}
		default:
			return nil, typeErr(`right of "in" must be a list like ["a", "b"] or a list fact like macs, found %s`, describe(r))
		}
	}
	foldCase(n)
	return n, nil
}

// foldCase lowercases the literals compared with a case-insensitive fact
// (MACs, UUID), or marks the comparison to lowercase at evaluation when
// the other side is not a literal. Regular expressions are left alone.
func foldCase(n *cmpNode) {
	if n.op == "=~" {
		return
	}
	folded := func(x node) bool {
		f, ok := x.(*factNode)
		return ok && factDefs[f.idx].fold
	}
	other := n.r
	switch {
	case folded(n.l):
	case folded(n.r):
		other = n.l
	default:
		return
	}
	switch o := other.(type) {
	case *strLit:
		o.v = strings.ToLower(o.v)
	case *listLit:
		for i, s := range o.strs {
			o.strs[i] = strings.ToLower(s)
		}
	case *factNode:
		n.fold = !folded(o)
	default:
		n.fold = true
	}
}
