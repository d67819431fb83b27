package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables a script gets.
const (
	EnvJobID     = "UNDERLAY_JOB_ID"
	EnvWorkDir   = "UNDERLAY_WORKDIR"
	EnvParams    = "UNDERLAY_PARAMS"
	EnvParamsEnv = "UNDERLAY_PARAMS_ENV"
	EnvOutputs   = "UNDERLAY_OUTPUTS"
	EnvReboot    = "UNDERLAY_REBOOT"
	// EnvParamPrefix starts one variable per param.
	EnvParamPrefix = "UNDERLAY_PARAM_"
)

// Files in a job directory.
const (
	fileScript    = "script"
	fileParams    = "params.json"
	fileParamsEnv = "params.env"
	fileOutputs   = "outputs"
	fileReboot    = "reboot"
)

// ParamEnvName is the environment variable of a param: UNDERLAY_PARAM_
// and the name with ASCII letters uppercased and every other character
// outside [A-Z0-9_] replaced by '_' (one '_' per character).
func ParamEnvName(name string) string {
	var b strings.Builder
	b.WriteString(EnvParamPrefix)
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// shellQuote quotes v for a POSIX shell: in single quotes, each single
// quote inside written as quote, backslash, quote, quote.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// scriptEnv writes the param files into dir and returns the script's
// environment: base (without variables the runner sets) and the job's.
func scriptEnv(dir string, spec Spec, base []string) ([]string, error) {
	names := map[string]string{} // env name -> param name
	values := map[string]string{}
	var vars, exports []string
	for i, p := range spec.Params {
		if p.Name == "" {
			return nil, fail(ErrSpec, "param %d has an empty name", i+1)
		}
		if _, dup := values[p.Name]; dup {
			return nil, fail(ErrSpec, "param %q is given twice", p.Name)
		}
		env := ParamEnvName(p.Name)
		if other, dup := names[env]; dup {
			return nil, fail(ErrSpec, "params %q and %q both map to %s", other, p.Name, env)
		}
		if strings.ContainsRune(p.Value, 0) {
			return nil, fail(ErrSpec, "param %q: value contains a NUL byte, which no environment variable can hold", p.Name)
		}
		names[env] = p.Name
		values[p.Name] = p.Value
		vars = append(vars, env+"="+p.Value)
		exports = append(exports, "export "+env+"="+shellQuote(p.Value)+"\n")
	}
	js, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{fileParams, append(js, '\n')},
		{fileParamsEnv, []byte(strings.Join(exports, ""))},
		{fileOutputs, nil},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	env := make([]string, 0, len(base)+len(vars)+6)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, EnvParamPrefix) || isRunnerVar(k) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		EnvJobID+"="+spec.JobID,
		EnvWorkDir+"="+dir,
		EnvParams+"="+filepath.Join(dir, fileParams),
		EnvParamsEnv+"="+filepath.Join(dir, fileParamsEnv),
		EnvOutputs+"="+filepath.Join(dir, fileOutputs),
		EnvReboot+"="+filepath.Join(dir, fileReboot),
	)
	return append(env, vars...), nil
}

func isRunnerVar(k string) bool {
	switch k {
	case EnvJobID, EnvWorkDir, EnvParams, EnvParamsEnv, EnvOutputs, EnvReboot:
		return true
	}
	return false
}
