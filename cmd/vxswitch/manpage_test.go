package main

import (
	"strings"
	"testing"
)

// TestUsageSynopses: the synopsis of every command in usageText (and of
// every pki command in pkiUsage) is the one its own flag set prints for
// -h, so that the help, and the manual page made from it, cannot drift
// from the flags.
func TestUsageSynopses(t *testing.T) {
	for _, cmd := range manCommands {
		if len(cmd) == 1 && cmd[0] == "pki" {
			continue // pki -h prints pkiUsage itself
		}
		text, err := commandHelp(cmd)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(text, "\n")
		syn, ok := strings.CutPrefix(first, "usage: vxswitch ")
		if !ok {
			t.Errorf("%v -h: first line %q", cmd, first)
			continue
		}
		where, line := usageText, "\n  "+syn+"\n"
		if cmd[0] == "pki" {
			where, line = pkiUsage, "\n  "+strings.TrimPrefix(syn, "pki ")+"\n"
		}
		if !strings.Contains(where, line) {
			t.Errorf("the help lacks the synopsis of %v as its flags print it: %q", cmd, strings.TrimSpace(line))
		}
	}
}

// TestManPage: the page carries usageText and every command's -h output,
// in go-md2man's title block, and every command usageText names has a
// section.
func TestManPage(t *testing.T) {
	var out, errOut strings.Builder
	if code := runMain(t.Context(), []string{"help", "-markdown", "-date", "2026-01-02"}, &out, &errOut); code != exitOK {
		t.Fatalf("help -markdown: exit %d: %s", code, errOut.String())
	}
	page := out.String()
	if !strings.HasPrefix(page, `% VXSWITCH 8 "2026-01-02" "vxswitch `+version+`"`) {
		t.Errorf("title block: %q", strings.SplitN(page, "\n", 2)[0])
	}
	if !strings.Contains(page, indent(usageText)) {
		t.Error("the page lacks usageText")
	}
	for _, cmd := range manCommands {
		text, err := commandHelp(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(page, "## "+strings.Join(cmd, " ")+"\n\n"+indent(text)) {
			t.Errorf("the page lacks the section of %v", cmd)
		}
	}
	_, list, _ := strings.Cut(usageText, "commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
			name := strings.Fields(l)[0]
			if !strings.Contains(page, "\n## "+name+"\n") {
				t.Errorf("usageText names %q, which has no section in the page", name)
			}
		}
	}
	// Plain `help` is still the usage.
	out.Reset()
	if code := runMain(t.Context(), []string{"help"}, &out, &errOut); code != exitOK || out.String() != usageText {
		t.Errorf("help: exit %d, %q", code, out.String())
	}
}
