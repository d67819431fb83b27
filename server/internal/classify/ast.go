package classify

import (
	"regexp"
	"slices"
	"strings"
)

// Precedence levels, used to print the fewest parentheses.
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp
	precPrimary
)

// node is a checked expression. eval never fails: Parse has already made
// sure every operand has the kind its operator needs.
type node interface {
	kind() kind
	eval(f *Facts) value
	prec() int
	write(b *strings.Builder)
	column() int
}

// writeKid writes kid, in parentheses when it binds less tightly than min.
func writeKid(b *strings.Builder, kid node, min int) {
	if kid.prec() < min {
		b.WriteByte('(')
		kid.write(b)
		b.WriteByte(')')
		return
	}
	kid.write(b)
}

// logicNode is a chain of && or || (flattened: no kid is the same kind of
// chain).
type logicNode struct {
	or   bool
	kids []node
	col  int
}

func (n *logicNode) kind() kind  { return kBool }
func (n *logicNode) column() int { return n.col }
func (n *logicNode) prec() int {
	if n.or {
		return precOr
	}
	return precAnd
}

func (n *logicNode) eval(f *Facts) value {
	for _, k := range n.kids {
		if k.eval(f).b == n.or {
			return value{b: n.or}
		}
	}
	return value{b: !n.or}
}

func (n *logicNode) write(b *strings.Builder) {
	sep, min := " && ", precNot
	if n.or {
		sep, min = " || ", precAnd
	}
	for i, k := range n.kids {
		if i > 0 {
			b.WriteString(sep)
		}
		writeKid(b, k, min)
	}
}

type notNode struct {
	x   node
	col int
}

func (n *notNode) kind() kind          { return kBool }
func (n *notNode) column() int         { return n.col }
func (n *notNode) prec() int           { return precNot }
func (n *notNode) eval(f *Facts) value { return value{b: !n.x.eval(f).b} }

// write puts a comparison under ! in parentheses although it binds more
// tightly, so that !(disks >= 2) does not read as (!disks) >= 2.
func (n *notNode) write(b *strings.Builder) {
	b.WriteByte('!')
	if _, ok := n.x.(*notNode); ok {
		n.x.write(b)
		return
	}
	writeKid(b, n.x, precPrimary)
}

// cmpNode is a comparison. fold lowercases both sides' strings at
// evaluation, for a case-insensitive fact compared with a non-literal.
type cmpNode struct {
	op   string
	l, r node
	re   *regexp.Regexp
	fold bool
	col  int
}

func (n *cmpNode) kind() kind  { return kBool }
func (n *cmpNode) column() int { return n.col }
func (n *cmpNode) prec() int   { return precCmp }

func (n *cmpNode) write(b *strings.Builder) {
	writeKid(b, n.l, precPrimary)
	b.WriteByte(' ')
	b.WriteString(n.op)
	b.WriteByte(' ')
	writeKid(b, n.r, precPrimary)
}

func (n *cmpNode) eval(f *Facts) value { return value{b: n.test(f)} }

func (n *cmpNode) test(f *Facts) bool {
	lv, rv := n.l.eval(f), n.r.eval(f)
	lk, rk := n.l.kind(), n.r.kind()
	if n.fold {
		lv, rv = lower(lv), lower(rv)
	}
	switch n.op {
	case "==", "!=":
		var eq bool
		switch {
		case lk == kList:
			eq = slices.Contains(lv.list, rv.str)
		case rk == kList:
			eq = slices.Contains(rv.list, lv.str)
		case lk == kNum:
			eq = lv.num == rv.num
		case lk == kStr:
			eq = lv.str == rv.str
		default:
			eq = lv.b == rv.b
		}
		return eq == (n.op == "==")
	case "<":
		return lv.num < rv.num
	case "<=":
		return lv.num <= rv.num
	case ">":
		return lv.num > rv.num
	case ">=":
		return lv.num >= rv.num
	case "=~":
		if lk == kList {
			return slices.ContainsFunc(lv.list, n.re.MatchString)
		}
		return n.re.MatchString(lv.str)
	case "contains":
		if lk == kList {
			return slices.ContainsFunc(lv.list, func(s string) bool { return strings.Contains(s, rv.str) })
		}
		return strings.Contains(lv.str, rv.str)
	case "in":
		if rk == kList {
			return slices.Contains(rv.list, lv.str)
		}
		lit := n.r.(*listLit)
		switch lk {
		case kNum:
			return slices.Contains(lit.nums, lv.num)
		case kStr:
			return slices.Contains(lit.strs, lv.str)
		default:
			return slices.ContainsFunc(lv.list, func(s string) bool { return slices.Contains(lit.strs, s) })
		}
	}
	return false
}

// lower lowercases a value's strings, for case-insensitive comparisons.
func lower(v value) value {
	v.str = strings.ToLower(v.str)
	if len(v.list) > 0 {
		l := make([]string, len(v.list))
		for i, s := range v.list {
			l[i] = strings.ToLower(s)
		}
		v.list = l
	}
	return v
}

type factNode struct {
	idx int
	col int
}

func (n *factNode) kind() kind               { return factDefs[n.idx].kind }
func (n *factNode) column() int              { return n.col }
func (n *factNode) prec() int                { return precPrimary }
func (n *factNode) eval(f *Facts) value      { return f.get(n.idx) }
func (n *factNode) write(b *strings.Builder) { b.WriteString(factDefs[n.idx].name) }

// labelNode is label.KEY or labels["KEY"]: the label's value, "" when unset.
type labelNode struct {
	key string
	col int
}

func (n *labelNode) kind() kind          { return kStr }
func (n *labelNode) column() int         { return n.col }
func (n *labelNode) prec() int           { return precPrimary }
func (n *labelNode) eval(f *Facts) value { return value{str: f.labels[n.key]} }

func (n *labelNode) write(b *strings.Builder) {
	if plainKey(n.key) {
		b.WriteString("label.")
		b.WriteString(n.key)
		return
	}
	b.WriteString("labels[")
	b.WriteString(quote(n.key))
	b.WriteByte(']')
}

// plainKey reports whether key can be written label.KEY.
func plainKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		if !isKeyChar(key[i]) {
			return false
		}
	}
	return true
}

type hasLabelNode struct {
	key string
	col int
}

func (n *hasLabelNode) kind() kind  { return kBool }
func (n *hasLabelNode) column() int { return n.col }
func (n *hasLabelNode) prec() int   { return precPrimary }
func (n *hasLabelNode) eval(f *Facts) value {
	_, ok := f.labels[n.key]
	return value{b: ok}
}
func (n *hasLabelNode) write(b *strings.Builder) {
	b.WriteString("has_label(")
	b.WriteString(quote(n.key))
	b.WriteByte(')')
}

type numLit struct {
	v   float64
	col int
}

func (n *numLit) kind() kind               { return kNum }
func (n *numLit) column() int              { return n.col }
func (n *numLit) prec() int                { return precPrimary }
func (n *numLit) eval(*Facts) value        { return value{num: n.v} }
func (n *numLit) write(b *strings.Builder) { b.WriteString(formatNum(n.v)) }

type strLit struct {
	v   string
	col int
}

func (n *strLit) kind() kind               { return kStr }
func (n *strLit) column() int              { return n.col }
func (n *strLit) prec() int                { return precPrimary }
func (n *strLit) eval(*Facts) value        { return value{str: n.v} }
func (n *strLit) write(b *strings.Builder) { b.WriteString(quote(n.v)) }

type boolLit struct {
	v   bool
	col int
}

func (n *boolLit) kind() kind        { return kBool }
func (n *boolLit) column() int       { return n.col }
func (n *boolLit) prec() int         { return precPrimary }
func (n *boolLit) eval(*Facts) value { return value{b: n.v} }
func (n *boolLit) write(b *strings.Builder) {
	if n.v {
		b.WriteString("true")
	} else {
		b.WriteString("false")
	}
}

// listLit is a list literal; its elements are all numbers or all strings
// (elem is kNum or kStr, or 0 for the empty list).
type listLit struct {
	elem kind
	nums []float64
	strs []string
	col  int
}

func (n *listLit) kind() kind        { return kLitList }
func (n *listLit) column() int       { return n.col }
func (n *listLit) prec() int         { return precPrimary }
func (n *listLit) eval(*Facts) value { return value{} }
func (n *listLit) write(b *strings.Builder) {
	b.WriteByte('[')
	for i, v := range n.nums {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(formatNum(v))
	}
	for i, s := range n.strs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(s))
	}
	b.WriteByte(']')
}
