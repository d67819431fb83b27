package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrModDep marks a malformed modules.dep or module list.
var ErrModDep = errors.New("bad module list or modules.dep")

// ModuleReport says what LoadModules did with each module.
type ModuleReport struct {
	Loaded  []string
	Already []string
	Builtin []string
	// Missing are listed but neither in modules.dep nor built in.
	Missing []string
	// Failed maps a module to why it did not load.
	Failed map[string]string
}

// module is one module to load.
type module struct{ name, params string }

// modName turns a module path or file name into the kernel's name for it.
func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// parseList reads a module list: a module a line, optionally followed by
// its parameters; # starts a comment.
func parseList(r io.Reader) ([]module, error) {
	var out []module
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.ContainsAny(f[0], "/=") {
			return nil, fmt.Errorf("module list line %d %q: %w", n, sc.Text(), ErrModDep)
		}
		out = append(out, module{name: modName(f[0]), params: strings.Join(f[1:], " ")})
	}
	return out, sc.Err()
}

// parseDep reads modules.dep into module name -> (path, dependencies).
func parseDep(r io.Reader) (paths map[string]string, deps map[string][]string, err error) {
	paths, deps = map[string]string{}, map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		path, rest, ok := strings.Cut(line, ":")
		if !ok || path == "" {
			return nil, nil, fmt.Errorf("modules.dep line %d %q: %w", n, line, ErrModDep)
		}
		name := modName(path)
		paths[name] = path
		for _, d := range strings.Fields(rest) {
			deps[name] = append(deps[name], modName(d))
		}
	}
	return paths, deps, sc.Err()
}

// order returns the modules to load for want, each after its
// dependencies, each once, and the wanted modules modules.dep lacks.
func order(want []module, paths map[string]string, deps map[string][]string, builtin map[string]bool) (out []module, missing []string) {
	params := map[string]string{}
	for _, m := range want {
		params[m.name] = m.params
	}
	done := map[string]bool{}
	var visit func(name string, depth int)
	visit = func(name string, depth int) {
		if done[name] || depth > 64 {
			return
		}
		done[name] = true
		for _, d := range deps[name] {
			visit(d, depth+1)
		}
		out = append(out, module{name: name, params: params[name]})
	}
	for _, m := range want {
		if _, ok := paths[m.name]; !ok && !builtin[m.name] {
			missing = append(missing, m.name)
			continue
		}
		visit(m.name, 0)
	}
	return out, missing
}

// LoadModules loads the modules listed in listFile, with their
// dependencies, from root/<release> (release "" is the running kernel's).
// A module that fails is reported, not returned as an error.
func LoadModules(listFile, root, release string) (ModuleReport, error) {
	rep := ModuleReport{Failed: map[string]string{}}
	if release == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return rep, fmt.Errorf("uname: %w", err)
		}
		release = unix.ByteSliceToString(u.Release[:])
	}
	dir := filepath.Join(root, release)
	lf, err := os.Open(listFile)
	if err != nil {
		return rep, err
	}
	want, err := parseList(lf)
	lf.Close()
	if err != nil {
		return rep, err
	}
	df, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return rep, err
	}
	paths, deps, err := parseDep(df)
	df.Close()
	if err != nil {
		return rep, err
	}
	builtin := nameSet(filepath.Join(dir, "modules.builtin"))
	loaded := nameSet("/proc/modules")
	mods, missing := order(want, paths, deps, builtin)
	rep.Missing = missing
	for _, m := range mods {
		switch {
		case builtin[m.name]:
			rep.Builtin = append(rep.Builtin, m.name)
			continue
		case loaded[m.name]:
			rep.Already = append(rep.Already, m.name)
			continue
		}
		err := insmod(filepath.Join(dir, paths[m.name]), m.params)
		switch {
		case errors.Is(err, unix.EEXIST):
			rep.Already = append(rep.Already, m.name)
		case err != nil:
			rep.Failed[m.name] = err.Error()
		default:
			rep.Loaded = append(rep.Loaded, m.name)
		}
	}
	return rep, nil
}

// nameSet reads the module names (first field, as a module name) of a
// file such as modules.builtin or /proc/modules; a missing file is empty.
func nameSet(path string) map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out[modName(f[0])] = true
		}
	}
	return out
}

// insmod loads one module file; compressed ones are left to the kernel to
// decompress.
func insmod(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if filepath.Ext(path) != ".ko" {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), params, flags); err != nil {
		return fmt.Errorf("finit_module %s: %w", filepath.Base(path), err)
	}
	return nil
}
