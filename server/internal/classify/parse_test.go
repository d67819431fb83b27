package classify

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{`disks >= 2 && memory_gib >= 8 && !is_vm`, `disks >= 2 && memory_gib >= 8 && !is_vm`},
		{"disks>=2&&memory_gib>=8\n\t&& !is_vm", `disks >= 2 && memory_gib >= 8 && !is_vm`},
		{`true`, `true`},
		{`false || is_vm`, `false || is_vm`},
		{`((is_vm))`, `is_vm`},
		{`(disks) >= (2)`, `disks >= 2`},
		{`(is_vm || nics > 1) && gpus == 0`, `(is_vm || nics > 1) && gpus == 0`},
		{`is_vm || (nics > 1 && gpus == 0)`, `is_vm || nics > 1 && gpus == 0`},
		{`(is_vm && nics > 1) && (gpus == 0 && disks > 1)`, `is_vm && nics > 1 && gpus == 0 && disks > 1`},
		{`is_vm || (nics > 1 || gpus == 0)`, `is_vm || nics > 1 || gpus == 0`},
		{`!disks >= 2`, `!(disks >= 2)`},
		{`!(is_vm)`, `!is_vm`},
		{`!!is_vm`, `!!is_vm`},
		{`!(!is_vm)`, `!!is_vm`},
		{`!(is_vm || gpus > 0)`, `!(is_vm || gpus > 0)`},
		{`(!is_vm) == true`, `(!is_vm) == true`},
		{`is_vm == (disks > 2)`, `is_vm == (disks > 2)`},
		{`memory_gib >= 1.50`, `memory_gib >= 1.5`},
		{`memory_gib >= 007`, `memory_gib >= 7`},
		{`disks > -1`, `disks > -1`},
		{`disk_gib > 0.000001`, `disk_gib > 0.000001`},
		{`vendor == 'Dell Inc.'`, `vendor == "Dell Inc."`},
		{`vendor == 'say "hi"'`, `vendor == "say \"hi\""`},
		{`vendor == "it\'s"`, `vendor == "it's"`},
		{`vendor == "back\\slash"`, `vendor == "back\slash"`},
		{`vendor == "\\"`, `vendor == "\\"`},
		{`product =~ "^R\d{3}$"`, `product =~ "^R\d{3}$"`},
		{`product =~ 'C:\\\\'`, `product =~ "C:\\\\"`},
		{`hostname in ["a", 'b',]`, `hostname in ["a", "b"]`},
		{`cpus in [8, 16.0]`, `cpus in [8, 16]`},
		{`disks in []`, `disks in []`},
		{`"ixgbe" in nic_drivers`, `"ixgbe" in nic_drivers`},
		{`nic_drivers in ["ixgbe", "i40e"]`, `nic_drivers in ["ixgbe", "i40e"]`},
		{`nic_drivers contains "ixg"`, `nic_drivers contains "ixg"`},
		{`cpu_model contains "Xeon"`, `cpu_model contains "Xeon"`},
		{`mac == "52:54:00:AB:CD:EF"`, `mac == "52:54:00:ab:cd:ef"`},
		{`"52:54:00:AB:CD:EF" == macs`, `"52:54:00:ab:cd:ef" == macs`},
		{`macs in ["AA:BB:CC:DD:EE:FF"]`, `macs in ["aa:bb:cc:dd:ee:ff"]`},
		{`"AA:BB:CC:DD:EE:FF" in mac`, `"aa:bb:cc:dd:ee:ff" in mac`},
		{`mac contains "52:54:00:AB"`, `mac contains "52:54:00:ab"`},
		{`mac =~ "^52:54:00:AB"`, `mac =~ "^52:54:00:AB"`},
		{`uuid == "4C4C4544-0042"`, `uuid == "4c4c4544-0042"`},
		{`uuid == label.uuid`, `uuid == label.uuid`},
		{`label.rack == "r12"`, `label.rack == "r12"`},
		{`labels["rack"] == "r12"`, `label.rack == "r12"`},
		{`labels['example.com/zone'] == "a"`, `label.example.com/zone == "a"`},
		{`labels["odd key"] != ""`, `labels["odd key"] != ""`},
		{`label.a-b.c == label.d`, `label.a-b.c == label.d`},
		{`has_label("rack") && !has_label('x')`, `has_label("rack") && !has_label("x")`},
		{`"a" == "a"`, `"a" == "a"`},
		{`hostname == ""`, `hostname == ""`},
		{`hostname contains label.rack`, `hostname contains label.rack`},
		{"vendor == \"multi\nline\"", "vendor == \"multi\nline\""},
		{`product == "Ünïcode ✓"`, `product == "Ünïcode ✓"`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			e, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			if diff := cmp.Diff(tt.want, e.String()); diff != "" {
				t.Errorf("String (-want +got):\n%s", diff)
			}
			again, err := Parse(e.String())
			if err != nil {
				t.Fatalf("Parse(canonical %q): %v", e.String(), err)
			}
			if diff := cmp.Diff(e.String(), again.String()); diff != "" {
				t.Errorf("canonical form is not stable (-first +second):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	known := "; known facts: " + strings.Join(FactNames(), ", ")
	deep := strings.Repeat("(", 2*MaxDepth+1) + "is_vm" + strings.Repeat(")", 2*MaxDepth+1)
	deepNot := strings.Repeat("!", MaxDepth+1) + "is_vm"
	nestedCmp := func(n int) string {
		return strings.Repeat("(", n-1) + "is_vm" + strings.Repeat(" == true)", n-1) + " == true"
	}
	deepCmp := nestedCmp(MaxDepth + 1)
	tests := []struct {
		src     string
		want    string
		typeErr bool
	}{
		{src: ``, want: `column 1: expected expression, found end of input`},
		{src: `   `, want: `column 4: expected expression, found end of input`},
		{src: `disks >= `, want: `column 10: expected expression, found end of input`},
		{src: `disks >= && is_vm`, want: `column 10: expected expression, found "&&"`},
		{src: `dsks >= 2`, want: `column 1: unknown fact "dsks" (did you mean "disks"?)` + known},
		{src: `is_vm && memroy_gib > 2`, want: `column 10: unknown fact "memroy_gib" (did you mean "memory_gib"?)` + known},
		{src: `memory > 2`, want: `column 1: unknown fact "memory" (did you mean "memory_gib"?)` + known},
		{src: `Disks > 2`, want: `column 1: unknown fact "Disks" (did you mean "disks"?)` + known},
		{src: `True`, want: `column 1: unknown fact "True" (did you mean "true"?)` + known},
		{src: `has_lable("x")`, want: `column 1: unknown fact "has_lable" (did you mean "has_label"?)` + known},
		{src: `flux_capacitor`, want: `column 1: unknown fact "flux_capacitor"` + known},
		{src: `vendor == "ÄÖÜäöüÄÖÜäöüÄÖÜäöüÄÖÜäöü" && disks`, want: `column 41: disks (number) is not a condition; compare it with a value`, typeErr: true},
		{src: `"ÄÖÜäöüÄÖÜäöüÄÖÜäöüÄÖÜäöü" == disks`, want: `column 28: cannot compare "ÄÖÜäöüÄÖÜäöüÄÖÜäöüÄ... (string) with disks (number)`, typeErr: true},
		{src: `memory_gib == "big"`, want: `column 12: cannot compare memory_gib (number) with "big" (string)`, typeErr: true},
		{src: `is_vm == 1`, want: `column 7: cannot compare is_vm (boolean) with 1 (number)`, typeErr: true},
		{src: `macs == nic_drivers`, want: `column 6: cannot compare macs (list) with nic_drivers (list)`, typeErr: true},
		{src: `hostname < "x"`, want: `column 10: "<" compares numbers only, not hostname (string) and "x" (string); strings support ==, !=, =~, in and contains`, typeErr: true},
		{src: `disks > "2"`, want: `column 7: cannot compare disks (number) with "2" (string)`, typeErr: true},
		{src: `disks`, want: `column 1: disks (number) is not a condition; compare it with a value`, typeErr: true},
		{src: `is_vm && hostname`, want: `column 10: hostname (string) is not a condition; compare it with a value`, typeErr: true},
		{src: `!label.rack`, want: `column 2: label.rack (string) is not a condition; compare it with a value`, typeErr: true},
		{src: `(disks) || is_vm`, want: `column 2: disks (number) is not a condition; compare it with a value`, typeErr: true},
		{src: `disks =~ "1"`, want: `column 7: "=~" matches strings, not disks (number)`, typeErr: true},
		{src: `product =~ vendor`, want: `column 9: right of "=~" must be a quoted regular expression, found vendor (string)`, typeErr: true},
		{src: `product =~ "("`, want: "column 12: bad regular expression \"(\": missing closing ): `(`"},
		{src: `product =~ "a{2000}"`, want: "column 12: bad regular expression \"a{2000}\": invalid repeat count: `{2000}`"},
		{src: `disks contains "1"`, want: `column 7: "contains" looks for a string in a string or a list, not "1" (string) in disks (number)`, typeErr: true},
		{src: `disks in ["1"]`, want: `column 7: cannot look for disks (number) in a list of strings`, typeErr: true},
		{src: `hostname in [1]`, want: `column 10: cannot look for hostname (string) in a list of numbers`, typeErr: true},
		{src: `is_vm in []`, want: `column 7: cannot look for is_vm (boolean) in an empty list`, typeErr: true},
		{src: `disks in macs`, want: `column 7: cannot look for disks (number) in macs (list); "in" with a list fact needs a string on the left`, typeErr: true},
		{src: `hostname in "abc"`, want: `column 10: right of "in" must be a list like ["a", "b"] or a list fact like macs, found "abc" (string)`, typeErr: true},
		{src: `disks in [1, "a"]`, want: `column 14: list mixes numbers and strings`, typeErr: true},
		{src: `disks in [1 2]`, want: `column 13: expected "," or "]" in the list, found 2`},
		{src: `disks in [nics]`, want: `column 11: expected a number or a quoted string in the list, found "nics"`},
		{src: `disks in [1`, want: `column 12: expected "," or "]" in the list, found end of input`},
		{src: `[1] == disks`, want: `column 1: a list is only allowed right of "in"`},
		{src: `disks == [1]`, want: `column 10: a list is only allowed right of "in"`},
		{src: `disks < 2 < 3`, want: `column 11: comparisons cannot be chained: "<" follows a comparison; join comparisons with &&`},
		{src: `(disks < 2 < 3)`, want: `column 12: comparisons cannot be chained: "<" follows a comparison; join comparisons with &&`},
		{src: `(disks >= 2`, want: `column 12: expected ")" to close "(" at column 1, found end of input`},
		{src: `disks >= 2)`, want: `column 11: unexpected ")"; expected an operator or the end of the expression`},
		{src: `disks 2`, want: `column 7: unexpected 2; expected an operator or the end of the expression`},
		{src: `is_vm is_vm`, want: `column 7: unexpected "is_vm"; expected an operator or the end of the expression`},
		{src: `x & y`, want: `column 3: unexpected character "&"; did you mean "&&"?`},
		{src: `is_vm | x`, want: `column 7: unexpected character "|"; did you mean "||"?`},
		{src: `disks = 2`, want: `column 7: unexpected character "="; did you mean "=="?`},
		{src: `disks ≥ 2`, want: `column 7: unexpected character "≥"`},
		{src: `memory_gib >= 16G`, want: `column 15: bad number "16G": numbers have no units (memory_gib and disk_gib are in GiB)`},
		{src: `memory_gib >= 1.`, want: `column 15: bad number "1.": expected a digit after the decimal point`},
		{src: `memory_gib >= 1.2.3`, want: `column 15: bad number "1.2.3": numbers have no units (memory_gib and disk_gib are in GiB)`},
		{src: `disks > 1` + strings.Repeat("0", 400), want: `column 9: number 10000000000000000000... is out of range`},
		{src: `vendor == "Dell`, want: `column 11: unterminated string`},
		{src: `vendor == 'Dell\'`, want: `column 11: unterminated string`},
		{src: `label. == "x"`, want: `column 7: expected a label key after "label.", like label.rack`},
		{src: `label == "x"`, want: `column 1: label needs a key: label.rack or labels["rack"]`},
		{src: `labels == "x"`, want: `column 1: labels needs a key in brackets: labels["rack"]`},
		{src: `labels.rack == "x"`, want: `column 1: write label.KEY or labels["KEY"], not labels.KEY`},
		{src: `labels[rack] == "x"`, want: `column 8: expected a quoted label key, like labels["rack"], found "rack"`},
		{src: `labels[""] == "x"`, want: `column 8: label key must not be empty`},
		{src: `labels["a"  == "x"`, want: `column 13: expected "]" after the label key, found "=="`},
		{src: `has_label`, want: `column 10: expected "(" after has_label, found end of input`},
		{src: `has_label(rack)`, want: `column 11: expected a quoted label key, like has_label("rack"), found "rack"`},
		{src: `has_label("a"`, want: `column 14: expected ")" after the label key, found end of input`},
		{src: `in`, want: `column 1: expected expression, found "in"`},
		{src: `is_vm && contains`, want: `column 10: expected expression, found "contains"`},
		{src: `vendor == "a" ` + "\xff", want: `column 15: expression is not valid UTF-8`},
		{src: strings.Repeat(" ", MaxLength-4) + "true", want: ``},
		{src: strings.Repeat(" ", MaxLength-3) + "true", want: `expression is 4097 bytes long; the limit is 4096`},
		{src: deep, want: fmt.Sprintf(`column %d: expression nests deeper than 32 levels`, 2*MaxDepth+1)},
		{src: deepNot, want: `column 33: expression nests deeper than 32 levels`},
		{src: deepNot[1:], want: ``},
		{src: deepCmp, want: fmt.Sprintf(`column %d: expression nests deeper than 32 levels`, strings.Index(deepCmp, "==")+1)},
		{src: nestedCmp(MaxDepth), want: ``},
	}
	for _, tt := range tests {
		name := tt.src
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			e, err := Parse(tt.src)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse = %s, want error %q", e, tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v does not wrap ErrSyntax", err)
			}
			if got := errors.Is(err, ErrType); got != tt.typeErr {
				t.Errorf("errors.Is(err, ErrType) = %v, want %v", got, tt.typeErr)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not an *Error", err)
			}
		})
	}
}

func TestNilExpr(t *testing.T) {
	var e *Expr
	if e.Eval(Facts{}) {
		t.Error("nil Expr evaluated to true")
	}
	if got := e.String(); got != "" {
		t.Errorf("nil Expr String() = %q, want empty", got)
	}
}

// TestParseDeepestCanonical: the canonical form of the deepest accepted
// expression, built so that its canonical form has the most parentheses
// per level (a ! inside a comparison inside a !), parses again.
func TestParseDeepestCanonical(t *testing.T) {
	src := "is_vm == true"
	for range (MaxDepth - 2) / 2 {
		src = "(!(" + src + ")) == true"
	}
	src = "!(" + src + ")"
	e, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := checkDepth(e.root, 1); err == nil {
		t.Fatalf("test expression is not at the depth limit")
	}
	again, err := Parse(e.String())
	if err != nil {
		t.Fatalf("Parse(canonical %q): %v", e.String(), err)
	}
	if diff := cmp.Diff(e.String(), again.String()); diff != "" {
		t.Errorf("canonical form is not stable (-first +second):\n%s", diff)
	}
	if _, err := Parse("!" + src); err == nil {
		t.Errorf("one level deeper parsed")
	}
}
