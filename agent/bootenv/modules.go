package bootenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModuleRequest is one line of the module list: a module name and the
// parameters to load it with.
type ModuleRequest struct {
	Name   string
	Params string
}

// ModuleReport says what happened to each module Prepare meant to load.
type ModuleReport struct {
	// Loaded were inserted now, in this order.
	Loaded []string
	// Already were loaded before (by the kernel or an earlier run).
	Already []string
	// Builtin are compiled into the kernel.
	Builtin []string
	// Missing are listed but unknown to modules.dep and not built in.
	Missing []string
	// Failed maps a module to why it could not be loaded.
	Failed map[string]string
}

// moduleName turns a module file name or path into the kernel's module
// name: base name without .ko and compression suffix, dashes as
// underscores.
func moduleName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// depEntry is one modules.dep line.
type depEntry struct {
	Path string   // relative to the release directory
	Deps []string // module names, as modules.dep lists them
}

// parseModulesDep reads modules.dep: "path: dep-path dep-path ...".
func parseModulesDep(r io.Reader) (map[string]depEntry, error) {
	out := map[string]depEntry{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		path, deps, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(path) == "" {
			return nil, fmt.Errorf("line %d %q: %w", n, line, ErrBadModDep)
		}
		e := depEntry{Path: strings.TrimSpace(path)}
		for _, d := range strings.Fields(deps) {
			e.Deps = append(e.Deps, moduleName(d))
		}
		out[moduleName(e.Path)] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return out, nil
}

// parseModuleList reads the image's module list: one module a line,
// optionally followed by parameters; blank lines and # comments are
// skipped. A module listed twice keeps its first position and its last
// parameters.
func parseModuleList(r io.Reader) ([]ModuleRequest, error) {
	var out []ModuleRequest
	at := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := moduleName(f[0])
		if strings.ContainsAny(name, "/=") {
			return nil, fmt.Errorf("line %d %q: %w", n, sc.Text(), ErrBadModule)
		}
		req := ModuleRequest{Name: name, Params: strings.Join(f[1:], " ")}
		if i, ok := at[name]; ok {
			out[i].Params = req.Params
			continue
		}
		at[name] = len(out)
		out = append(out, req)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	return out, nil
}

// parseNameSet reads a file of module paths or names, one a line (the
// first field), as used by modules.builtin and /proc/modules.
func parseNameSet(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			out[moduleName(f[0])] = true
		}
	}
	return out, sc.Err()
}

// loadOrder expands the requests with their dependencies, dependencies
// first, each module once. Requests unknown to deps and not built in are
// returned as missing; built-in modules stay in the order (the loader skips
// them) so the report can say so.
func loadOrder(reqs []ModuleRequest, deps map[string]depEntry, builtin map[string]bool) (order []ModuleRequest, missing []string) {
	params := map[string]string{}
	for _, r := range reqs {
		params[r.Name] = r.Params
	}
	seen := map[string]bool{}
	var visit func(name string, stack map[string]bool)
	visit = func(name string, stack map[string]bool) {
		if seen[name] || stack[name] {
			return
		}
		stack[name] = true
		for _, d := range deps[name].Deps {
			visit(d, stack)
		}
		delete(stack, name)
		seen[name] = true
		order = append(order, ModuleRequest{Name: name, Params: params[name]})
	}
	for _, r := range reqs {
		if _, ok := deps[r.Name]; !ok && !builtin[r.Name] {
			missing = append(missing, r.Name)
			continue
		}
		visit(r.Name, map[string]bool{})
	}
	return order, missing
}

// LoadModules loads the modules of o.ModulesFile, with their dependencies
// from modules.dep, from o.ModulesRoot/<o.Release> (the running kernel's
// release when empty), tolerating modules that fail: they are in the
// report, not the error. Prepare calls it; so does the VM test guest.
func LoadModules(log *slog.Logger, o Options) (ModuleReport, error) {
	rep := ModuleReport{Failed: map[string]string{}}
	rel := o.Release
	if rel == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return rep, fmt.Errorf("uname: %w", err)
		}
		rel = unix.ByteSliceToString(u.Release[:])
	}
	dir := filepath.Join(o.ModulesRoot, rel)

	reqs, err := readWith(o.ModulesFile, parseModuleList)
	if err != nil {
		return rep, err
	}
	deps, err := readWith(filepath.Join(dir, "modules.dep"), parseModulesDep)
	if err != nil {
		return rep, err
	}
	builtin, err := readWith(filepath.Join(dir, "modules.builtin"), parseNameSet)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, err
	}
	loaded, err := readWith("/proc/modules", parseNameSet)
	if err != nil {
		log.Warn("cannot list loaded modules", "err", err)
	}

	order, missing := loadOrder(reqs, deps, builtin)
	rep.Missing = missing
	for _, m := range missing {
		log.Warn("module not in modules.dep", "module", m)
	}
	for _, m := range order {
		switch {
		case builtin[m.Name]:
			rep.Builtin = append(rep.Builtin, m.Name)
			continue
		case loaded[m.Name]:
			rep.Already = append(rep.Already, m.Name)
			continue
		}
		err := insmod(filepath.Join(dir, deps[m.Name].Path), m.Params)
		switch {
		case errors.Is(err, unix.EEXIST):
			rep.Already = append(rep.Already, m.Name)
		case err != nil:
			rep.Failed[m.Name] = err.Error()
			log.Warn("module load failed", "module", m.Name, "err", err)
		default:
			rep.Loaded = append(rep.Loaded, m.Name)
			log.Debug("module loaded", "module", m.Name)
		}
	}
	return rep, nil
}

// insmod loads one module file with finit_module; compressed files are
// handed to the kernel to decompress (CONFIG_MODULE_DECOMPRESS).
func insmod(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open module: %w", err)
	}
	defer f.Close()
	flags := 0
	if ext := filepath.Ext(path); ext != ".ko" {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), params, flags); err != nil {
		return fmt.Errorf("finit_module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// readWith opens path and parses it with parse.
func readWith[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}
