package main

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

var testNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(d)) }

func testTokens() *underlayv1.ListTokensResponse {
	return &underlayv1.ListTokensResponse{Tokens: []*underlayv1.Token{
		{Id: "t-1", Kind: underlayv1.TokenKind_TOKEN_KIND_DISCOVERY, Created: ts(-3 * time.Minute),
			Expires: ts(23 * time.Hour), UsesAllowed: 50, Uses: 2, Description: "rack 12", CreatedBy: "admin"},
		{Id: "t-2", Kind: underlayv1.TokenKind_TOKEN_KIND_SERVER, Created: ts(-72 * time.Hour),
			Expires: ts(-48 * time.Hour), UsesAllowed: 1},
		{Id: "t-3", Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, Created: ts(-90 * time.Second), Revoked: true},
		{Id: "t-4", Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, UsesAllowed: 3, Uses: 3},
	}}
}

func testStatus() *underlayv1.ClusterStatus {
	return &underlayv1.ClusterStatus{
		ClusterId: "c-42", LeaderId: "n1", LeaderAddr: "10.0.0.1:7443", Term: 3,
		CommitIndex: 120, AppliedIndex: 119, AnsweredBy: "n2",
		Members: []*underlayv1.Member{
			{Id: "n1", RaftAddr: "10.0.0.1:7000", ApiAddr: "10.0.0.1:7443", Role: "leader", Health: "healthy"},
			{Id: "n2", RaftAddr: "10.0.0.2:7000", ApiAddr: "10.0.0.2:7443", Role: "follower", Health: "healthy",
				LastContactSeconds: 0.045},
			{Id: "n3", RaftAddr: "10.0.0.3:7000", Role: "follower", Health: "unreachable",
				LastContact: ts(-5 * time.Minute)},
		},
	}
}

// render prints m in format the way a command does.
func render(t testing.TB, format string, m proto.Message, table func(p *printer, w io.Writer)) string {
	t.Helper()
	var buf bytes.Buffer
	p, err := newPrinter(&buf, format, func() time.Time { return testNow })
	if err != nil {
		t.Fatalf("newPrinter(%q): %v", format, err)
	}
	if err := p.print(m, func(w io.Writer) { table(p, w) }); err != nil {
		t.Fatalf("print: %v", err)
	}
	return buf.String()
}

func TestOutputFormats(t *testing.T) {
	tokens := testTokens()
	tokensTable := func(p *printer, w io.Writer) { p.tokensTable(w, tokens.GetTokens()) }
	status := testStatus()
	statusTable := func(p *printer, w io.Writer) { p.clusterStatusTable(w, status) }
	tests := []struct {
		name   string
		format string
		msg    proto.Message
		table  func(p *printer, w io.Writer)
		want   string
	}{
		{
			name: "tokens table", format: "table", msg: tokens, table: tokensTable,
			want: `ID   KIND       STATUS   USES         EXPIRES  CREATED  CREATED BY  DESCRIPTION
t-1  discovery  active   2/50         in 23h   3m ago   admin       rack 12
t-2  server     expired  0/1          2d ago   3d ago   -           -
t-3  agent      revoked  0/unlimited  -        90s ago  -           -
t-4  agent      used-up  3/3          -        -        -           -
`,
		},
		{
			name: "tokens json", format: "json", msg: &underlayv1.ListTokensResponse{Tokens: tokens.GetTokens()[:1]}, table: tokensTable,
			want: `{
  "tokens": [
    {
      "id": "t-1",
      "kind": "TOKEN_KIND_DISCOVERY",
      "created": "2025-01-02T03:01:05Z",
      "expires": "2025-01-03T02:04:05Z",
      "uses_allowed": 50,
      "uses": 2,
      "description": "rack 12",
      "created_by": "admin"
    }
  ]
}
`,
		},
		{
			name: "tokens yaml", format: "yaml", msg: &underlayv1.ListTokensResponse{Tokens: tokens.GetTokens()[1:2]}, table: tokensTable,
			want: `tokens:
- created: "2024-12-30T03:04:05Z"
  expires: "2024-12-31T03:04:05Z"
  id: t-2
  kind: TOKEN_KIND_SERVER
  uses_allowed: 1
`,
		},
		{
			name: "cluster status table", format: "table", msg: status, table: statusTable,
			want: `Cluster:        c-42
Leader:         n1 (10.0.0.1:7443)
Term:           3
Commit index:   120
Applied index:  119
Answered by:    n2

ID  RAFT ADDR      API ADDR       ROLE      HEALTH       LAST CONTACT
n1  10.0.0.1:7000  10.0.0.1:7443  leader    healthy      -
n2  10.0.0.2:7000  10.0.0.2:7443  follower  healthy      45ms ago
n3  10.0.0.3:7000  -              follower  unreachable  5m ago
`,
		},
		{
			name: "cluster status json", format: "json",
			msg:   &underlayv1.ClusterStatus{ClusterId: "c-42", LeaderId: "n1", Term: 3, CommitIndex: 120, Members: status.GetMembers()[1:2]},
			table: statusTable,
			want: `{
  "cluster_id": "c-42",
  "leader_id": "n1",
  "term": "3",
  "commit_index": "120",
  "members": [
    {
      "id": "n2",
      "raft_addr": "10.0.0.2:7000",
      "api_addr": "10.0.0.2:7443",
      "role": "follower",
      "health": "healthy",
      "last_contact_seconds": 0.045
    }
  ]
}
`,
		},
		{
			name: "cluster status yaml", format: "yaml",
			msg:   &underlayv1.ClusterStatus{ClusterId: "c-42", LeaderId: "n1", Term: 3, AnsweredBy: "n2"},
			table: statusTable,
			want: `answered_by: n2
cluster_id: c-42
leader_id: n1
term: "3"
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(t, tt.format, tt.msg, tt.table)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadFormat(t *testing.T) {
	_, err := newPrinter(io.Discard, "xml", time.Now)
	if got, want := exitCode(err), exitUsage; got != want {
		t.Errorf("exitCode(newPrinter(xml)) = %d, want %d (err %v)", got, want, err)
	}
}

func TestEventLines(t *testing.T) {
	e := &underlayv1.Event{Index: 7, Time: ts(0), Kind: "machine.state", MachineId: "m-1", Actor: "operator/alice", Message: "ready -> configuring"}
	tests := []struct {
		name, format, want string
	}{
		{"table", "table", "2025-01-02T03:04:05Z  7      machine.state  machine=m-1  by=operator/alice  ready -> configuring\n"},
		{"json is one line", "json", `{"index":"7","time":"2025-01-02T03:04:05Z","kind":"machine.state","machine_id":"m-1","message":"ready -> configuring","actor":"operator/alice"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			p, err := newPrinter(&buf, tt.format, func() time.Time { return testNow })
			if err != nil {
				t.Fatal(err)
			}
			if err := p.line(e, eventLine(e)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, buf.String()); diff != "" {
				t.Errorf("line mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnumNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{stateName(underlayv1.MachineState_MACHINE_STATE_DISCOVERED), "discovered"},
		{stateName(underlayv1.MachineState_MACHINE_STATE_REDEPLOYING), "redeploying"},
		{tokenKindName(underlayv1.TokenKind_TOKEN_KIND_AGENT), "agent"},
		{roleName(underlayv1.OperatorRole_OPERATOR_ROLE_READONLY), "readonly"},
		{roleName(underlayv1.OperatorRole_OPERATOR_ROLE_UNSPECIFIED), "-"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("name mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// machine show says which rules classified a machine, and says so when none
// matched; a machine the rules never saw has no such line.
func TestMachineDetailClassification(t *testing.T) {
	show := func(m *underlayv1.Machine) string {
		var buf bytes.Buffer
		p, err := newPrinter(&buf, formatTable, func() time.Time { return testNow })
		if err != nil {
			t.Fatal(err)
		}
		p.machineDetail(&buf, m)
		return buf.String()
	}
	for _, tc := range []struct {
		m    *underlayv1.Machine
		want string
	}{
		{&underlayv1.Machine{Id: "m-1", Profiles: []string{"a", "b"}, ClassifiedVersion: 3, ClassifiedBy: []string{"big", "rack12"}}, "Classified by:\tbig,rack12 (inventory v3)\n"},
		{&underlayv1.Machine{Id: "m-2", ClassifiedVersion: 1}, "Classified by:\t(no rule matched) (inventory v1)\n"},
		{&underlayv1.Machine{Id: "m-1", Profiles: []string{"a", "b"}}, "Profiles:\ta,b\n"},
	} {
		if out := show(tc.m); !bytes.Contains([]byte(out), []byte(tc.want)) {
			t.Errorf("machine %s: output lacks %q:\n%s", tc.m.GetId(), tc.want, out)
		}
	}
	if out := show(&underlayv1.Machine{Id: "m-3"}); bytes.Contains([]byte(out), []byte("Classified")) {
		t.Errorf("unclassified machine shows a classification:\n%s", out)
	}
}
