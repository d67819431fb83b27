package vmtest

import (
	"fmt"
	"io"
	"strings"
)

// cpioEntry is one file of a newc cpio archive.
type cpioEntry struct {
	Name string // relative path, no leading slash
	Mode uint32 // file type and permission bits (0o100755, 0o120777, 0o040755)
	Data []byte // file contents, or the target of a symlink
}

// cpio file type bits.
const (
	cpioDir     = 0o040000
	cpioRegular = 0o100000
	cpioSymlink = 0o120000
)

// writeCPIO writes entries as a newc ("070701") cpio archive, ending with
// the TRAILER!!! entry. Every header and every file's data starts on a
// 4-byte boundary, as the format requires.
func writeCPIO(w io.Writer, entries []cpioEntry) error {
	cw := &countWriter{w: w}
	for i, e := range append(entries, cpioEntry{Name: "TRAILER!!!"}) {
		if strings.HasPrefix(e.Name, "/") || e.Name == "" {
			return fmt.Errorf("cpio entry %q: want a relative path", e.Name)
		}
		nlink := 1
		if e.Mode&0o170000 == cpioDir {
			nlink = 2
		}
		ino := i + 1
		if e.Name == "TRAILER!!!" {
			ino, nlink = 0, 1
		}
		hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, 0, 0, len(e.Name)+1, 0)
		if _, err := io.WriteString(cw, hdr+e.Name+"\x00"); err != nil {
			return err
		}
		if err := cw.pad(4); err != nil {
			return err
		}
		if _, err := cw.Write(e.Data); err != nil {
			return err
		}
		if err := cw.pad(4); err != nil {
			return err
		}
	}
	return nil
}

// countWriter counts what it writes, for padding.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pad writes zeros up to the next multiple of align.
func (c *countWriter) pad(align int64) error {
	if r := c.n % align; r != 0 {
		_, err := c.Write(make([]byte, align-r))
		return err
	}
	return nil
}
