package packaging

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		name string
		unit []byte
		want []string
	}{
		{"agent", AgentUnit(), []string{"ExecStart=/usr/local/bin/underlay-agent run --config /etc/underlay/agent.yaml", "Restart=always", "WantedBy=multi-user.target"}},
		{"server", ServerUnit(), []string{"ExecStart=/usr/local/bin/underlay server --config /etc/underlay/server.yaml", "Restart=on-failure", "WantedBy=multi-user.target"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var missing []string
			for _, w := range tc.want {
				if !strings.Contains(string(tc.unit), w+"\n") {
					missing = append(missing, w)
				}
			}
			if diff := cmp.Diff([]string(nil), missing); diff != "" {
				t.Errorf("unit lacks lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJoinScript(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       JoinParams
		want    []string
		wantErr error
	}{
		{
			name: "renders and quotes",
			p:    JoinParams{Servers: []string{"a:7443", "b:7443"}, Fingerprint: "ab12", BaseURL: "https://a:7443"},
			want: []string{"SERVERS='a:7443,b:7443'\n", "FP='ab12'\n", "BASE='https://a:7443'\n"},
		},
		{
			name: "hostile values stay quoted",
			p:    JoinParams{Servers: []string{"a'; rm -rf /; '"}, Fingerprint: "f", BaseURL: "https://x"},
			want: []string{`SERVERS='a'\''; rm -rf /; '\'''` + "\n"},
		},
		{name: "missing fingerprint", p: JoinParams{Servers: []string{"a"}, BaseURL: "https://a"}, wantErr: ErrJoinParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := JoinScript(tc.p)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("JoinScript() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(string(got), w) {
					t.Errorf("script lacks %q", w)
				}
			}
			if strings.Contains(string(got), "TOKEN=$1") || !strings.Contains(string(got), "TOKEN=${1:-") {
				t.Error("token must come from the argument")
			}
			sh, err := exec.LookPath("sh")
			if err != nil {
				t.Skip("no sh to syntax-check with")
			}
			cmd := exec.Command(sh, "-n")
			cmd.Stdin = strings.NewReader(string(got))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("sh -n: %v\n%s", err, out)
			}
		})
	}
}
