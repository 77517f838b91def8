package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The manual is checked against the binary: every key the configuration
// structs accept is documented in docs/configuration.md (and nothing else),
// and every relative link in README.md and docs/*.md leads somewhere.

const repoRoot = "../.."

// configKeys returns every key the configuration accepts, as
// "section.key" ("segment.static.mac" for a table inside a table), from
// the toml tags of t's fields, recursively.
func configKeys(t reflect.Type) []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch name {
			case "-":
				continue
			case "":
				name = strings.ToLower(f.Name)
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice || ft.Kind() == reflect.Array {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft, prefix+name+".")
				continue
			}
			out = append(out, prefix+name)
		}
	}
	walk(t, "")
	slices.Sort(out)
	return out
}

// keyRow matches a documented key: a table row whose first cell is the key
// in backticks, "| `section.key` | ...".
var keyRow = regexp.MustCompile("^\\|\\s*`([a-z0-9_]+(?:\\.[a-z0-9_]+)+)`\\s*\\|")

// documentedKeys returns the keys documented in a configuration page, with
// the line of each; a key documented twice is an error.
func documentedKeys(text string) (map[string]int, []string) {
	keys := map[string]int{}
	var errs []string
	for i, line := range strings.Split(text, "\n") {
		m := keyRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if prev, dup := keys[m[1]]; dup {
			errs = append(errs, fmt.Sprintf("line %d: %s is documented twice (first on line %d)", i+1, m[1], prev))
			continue
		}
		keys[m[1]] = i + 1
	}
	return keys, errs
}

// compareKeys lists the accepted keys that are not documented and the
// documented keys the binary does not accept.
func compareKeys(accepted []string, documented map[string]int) (undocumented, unknown []string) {
	acc := map[string]bool{}
	for _, k := range accepted {
		acc[k] = true
		if _, ok := documented[k]; !ok {
			undocumented = append(undocumented, k)
		}
	}
	for k, line := range documented {
		if !acc[k] {
			unknown = append(unknown, fmt.Sprintf("%s (line %d)", k, line))
		}
	}
	slices.Sort(unknown)
	return undocumented, unknown
}

// TestConfigKeysDocumented: docs/configuration.md documents exactly the
// keys the binary accepts.
func TestConfigKeysDocumented(t *testing.T) {
	const page = "docs/configuration.md"
	b, err := os.ReadFile(filepath.Join(repoRoot, page))
	if err != nil {
		t.Fatal(err)
	}
	accepted := configKeys(reflect.TypeFor[fileConfig]())
	if len(accepted) < 40 {
		t.Fatalf("only %d keys found in fileConfig: %v", len(accepted), accepted)
	}
	documented, errs := documentedKeys(string(b))
	for _, e := range errs {
		t.Errorf("%s: %s", page, e)
	}
	undocumented, unknown := compareKeys(accepted, documented)
	for _, k := range undocumented {
		t.Errorf("%s: key %s is accepted by the binary but not documented (add a row \"| `%s` | default | what it does | a bad value gives |\")", page, k, k)
	}
	for _, k := range unknown {
		t.Errorf("%s: key %s is documented but the binary does not accept it", page, k)
	}
}

// TestConfigKeysDocumentedCatchesDrift: the comparison reports a missing
// row and an extra one.
func TestConfigKeysDocumentedCatchesDrift(t *testing.T) {
	type inner struct {
		MAC string `toml:"mac"`
	}
	type section struct {
		Name   string  `toml:"name"`
		MTU    *int64  `toml:"mtu"`
		Static []inner `toml:"static"`
	}
	type file struct {
		Site    section   `toml:"site"`
		Segment []section `toml:"segment"`
		Skip    string    `toml:"-"`
	}
	keys := configKeys(reflect.TypeFor[file]())
	want := []string{"segment.mtu", "segment.name", "segment.static.mac", "site.mtu", "site.name", "site.static.mac"}
	if !slices.Equal(keys, want) {
		t.Fatalf("configKeys = %v, want %v", keys, want)
	}
	doc := "| key | default |\n|---|---|\n| `site.name` | required |\n| `site.mtu` | 1500 |\n| `site.static.mac` | - |\n" +
		"| `segment.name` | x |\n| `segment.static.mac` | x |\n| `segment.nmae` | typo |\n| `segment.name` | twice |\n"
	documented, errs := documentedKeys(doc)
	if len(errs) != 1 || !strings.Contains(errs[0], "segment.name is documented twice") {
		t.Errorf("duplicate rows: %v", errs)
	}
	undocumented, unknown := compareKeys(keys, documented)
	if !slices.Equal(undocumented, []string{"segment.mtu"}) {
		t.Errorf("undocumented = %v, want [segment.mtu]", undocumented)
	}
	if !slices.Equal(unknown, []string{"segment.nmae (line 8)"}) {
		t.Errorf("unknown = %v, want [segment.nmae (line 8)]", unknown)
	}
}

// docPages returns README.md and every docs/*.md, relative to the root.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no docs/*.md")
	}
	return append([]string{filepath.Join(repoRoot, "README.md")}, pages...)
}

// githubSlug is the anchor GitHub gives a heading: lower-case, spaces to
// '-', punctuation other than '-' and '_' removed.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

var (
	// link text: escaped characters, other text, one level of brackets
	inlineLink = regexp.MustCompile(`!?\[((?:\\.|[^\[\]\\]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*(\S+)`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	htmlAnchor = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	emphasis   = regexp.MustCompile(`[*]+`)
)

// headingText is a heading as GitHub renders it before making the slug:
// links become their text, code spans and emphasis lose their marks.
func headingText(h string) string {
	h = inlineLink.ReplaceAllString(h, "$1")
	h = strings.ReplaceAll(h, "`", "")
	h = emphasis.ReplaceAllString(h, "")
	return strings.TrimSpace(strings.TrimRight(strings.TrimSpace(h), "#"))
}

// mdPage is what the link check needs of a page: its anchors and its
// links, with their lines.
type mdPage struct {
	anchors map[string]bool
	links   []mdLink
}

type mdLink struct {
	line   int
	target string
}

// parsePage reads the headings and links of a Markdown page, outside code
// blocks and code spans.
func parsePage(text string) mdPage {
	p := mdPage{anchors: map[string]bool{}}
	seen := map[string]int{}
	inFence := false
	fence := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if inFence {
			if strings.HasPrefix(trimmed, fence) {
				inFence = false
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			inFence, fence = true, trimmed[:3]
			continue
		}
		if strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t") {
			continue // an indented code block (no list in these pages nests code that deep)
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			p.anchors[m[1]] = true
		}
		if strings.HasPrefix(trimmed, "#") {
			level := len(trimmed) - len(strings.TrimLeft(trimmed, "#"))
			if level <= 6 && (len(trimmed) == level || trimmed[level] == ' ') {
				slug := githubSlug(headingText(trimmed[level:]))
				if k := seen[slug]; k > 0 {
					p.anchors[fmt.Sprintf("%s-%d", slug, k)] = true
				} else {
					p.anchors[slug] = true
				}
				seen[slug]++
			}
		}
		plain := codeSpan.ReplaceAllString(line, "")
		if m := refLink.FindStringSubmatch(plain); m != nil {
			p.links = append(p.links, mdLink{n, m[1]})
			continue
		}
		for _, m := range inlineLink.FindAllStringSubmatch(plain, -1) {
			p.links = append(p.links, mdLink{n, m[2]})
		}
	}
	return p
}

// TestDocsLinks: every relative link in README.md and docs/*.md names a
// file or directory that exists and, with a #fragment into a Markdown
// page, a heading of that page.
func TestDocsLinks(t *testing.T) {
	cache := map[string]mdPage{}
	load := func(path string) (mdPage, error) {
		if p, ok := cache[path]; ok {
			return p, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return mdPage{}, err
		}
		p := parsePage(string(b))
		cache[path] = p
		return p, nil
	}
	checked := 0
	for _, page := range docPages(t) {
		p, err := load(page)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, page)
		for _, l := range p.links {
			target := l.target
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			file, frag, _ := strings.Cut(target, "#")
			dest := page
			if file != "" {
				dest = filepath.Join(filepath.Dir(page), filepath.FromSlash(file))
			}
			st, err := os.Stat(dest)
			if err != nil {
				t.Errorf("%s:%d: link %q: %s does not exist", rel, l.line, target, file)
				continue
			}
			if frag == "" {
				continue
			}
			if st.IsDir() || !strings.HasSuffix(dest, ".md") {
				t.Errorf("%s:%d: link %q: a #fragment into something that is not a Markdown page", rel, l.line, target)
				continue
			}
			dp, err := load(dest)
			if err != nil {
				t.Fatal(err)
			}
			if !dp.anchors[frag] {
				t.Errorf("%s:%d: link %q: %s has no heading with the anchor #%s", rel, l.line, target, filepath.Base(dest), frag)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: is the parser broken?")
	}
}

// TestDocsSlug: GitHub's anchors for the kinds of headings these pages
// have, and the link check's own parsing.
func TestDocsSlug(t *testing.T) {
	for _, tt := range []struct{ heading, want string }{
		{"Path MTU", "path-mtu"},
		{"[site]", "site"},
		{"[[segment.static]]", "segmentstatic"},
		{"`vxswitch pki`: a site CA", "vxswitch-pki-a-site-ca"},
		{"Signals and reload (SIGHUP)", "signals-and-reload-sighup"},
		{"2026-12-02: quick profile, three runs", "2026-12-02-quick-profile-three-runs"},
		{"Pings work but TCP stalls", "pings-work-but-tcp-stalls"},
		{"crypto_workers and GOMAXPROCS", "crypto_workers-and-gomaxprocs"},
		{"Where the **cycles** go", "where-the-cycles-go"},
		{"[Links](x.md) in a heading", "links-in-a-heading"},
	} {
		if got := githubSlug(headingText(tt.heading)); got != tt.want {
			t.Errorf("slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
	p := parsePage("# A\n## A\n```\n## not a heading [x](nowhere.md)\n```\n    [y](indented.md)\ntext `[z](code.md)` [w](real.md#a-1)\n" +
		"[Configuration: \\[evpn\\]](c.md#evpn) and [\\[\\[peer\\]\\]](c.md#peer)\n[ref]: other.md\n")
	if !p.anchors["a"] || !p.anchors["a-1"] || p.anchors["not-a-heading"] {
		t.Errorf("anchors = %v", p.anchors)
	}
	var targets []string
	for _, l := range p.links {
		targets = append(targets, l.target)
	}
	if !slices.Equal(targets, []string{"real.md#a-1", "c.md#evpn", "c.md#peer", "other.md"}) {
		t.Errorf("links = %v", targets)
	}
}
