package runner

import "bytes"

// minSecretLen is the shortest value that is redacted: shorter values
// would turn ordinary text into stars.
const minSecretLen = 4

// mask replaces a secret value in logs.
var mask = []byte("***")

// secrets is the set of values to redact. It is not safe for concurrent
// use; the sink serialises access.
type secrets struct {
	values [][]byte
	seen   map[string]bool
	first  [256]bool // first bytes of the values
}

// add registers a value; values shorter than minSecretLen are ignored.
func (s *secrets) add(v string) {
	if len(v) < minSecretLen || s.seen[v] {
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[v] = true
	s.values = append(s.values, []byte(v))
	s.first[v[0]] = true
}

// redactor redacts one stream. Secrets may arrive split across writes, so
// it holds back a tail of the input that could still be the start of a
// secret (at most the longest secret's length minus one bytes) until the
// next write or the final flush.
type redactor struct {
	set     *secrets
	pending []byte
}

// write redacts pending+p and returns what can be emitted now. With final,
// nothing is held back.
func (r *redactor) write(p []byte, final bool) []byte {
	buf := p
	if len(r.pending) > 0 {
		buf = append(r.pending, p...)
		r.pending = nil
	}
	if len(r.set.values) == 0 {
		return buf
	}
	var out []byte
	i := 0
	for i < len(buf) {
		j := i
		for j < len(buf) && !r.set.first[buf[j]] {
			j++
		}
		out = append(out, buf[i:j]...)
		i = j
		if i == len(buf) {
			break
		}
		n, undecided := r.matchAt(buf[i:], final)
		switch {
		case undecided:
			r.pending = append([]byte(nil), buf[i:]...)
			return out
		case n > 0:
			out = append(out, mask...)
			i += n
		default:
			out = append(out, buf[i])
			i++
		}
	}
	return out
}

// matchAt returns the length of the longest secret that b starts with.
// undecided is true when b is a proper prefix of a secret longer than
// that: more input could still complete it.
func (r *redactor) matchAt(b []byte, final bool) (n int, undecided bool) {
	for _, s := range r.set.values {
		if len(b) >= len(s) {
			if len(s) > n && bytes.HasPrefix(b, s) {
				n = len(s)
			}
		} else if !final && bytes.HasPrefix(s, b) {
			undecided = true
		}
	}
	if undecided {
		return 0, true
	}
	return n, false
}
