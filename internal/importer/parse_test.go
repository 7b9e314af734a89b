package importer

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/reconcile/reconcile/internal/model"
)

const testKey = "Key0123456789abcdefXYZ" // a valid auth key (22 letters and digits)

// parseAll parses input and returns the good records and the bad lines.
func parseAll(t *testing.T, input string) ([]Record, []LineError) {
	t.Helper()
	p, err := NewParser(strings.NewReader(input))
	if err != nil {
		t.Fatalf("NewParser: %v", err)
	}
	var good []Record
	var bad []LineError
	for {
		rec, le, err := p.Next()
		if errors.Is(err, io.EOF) {
			return good, bad
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if le != nil {
			bad = append(bad, *le)
			continue
		}
		good = append(good, rec)
	}
}

func TestNewParserHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, input string
		wantErr     error
	}{
		{"exact", Header + "\n", nil},
		{"with account", HeaderWithAccount + "\n", nil},
		{"with account, byte order mark, crlf", "\uFEFF" + HeaderWithAccount + "\r\n", nil},
		{"account not last", "account," + Header + "\n", ErrHeader},
		{"account twice", HeaderWithAccount + ",account\n", ErrHeader},
		{"account upper case", Header + ",Account\n", ErrHeader},
		{"crlf", Header + "\r\n", nil},
		{"no trailing newline", Header, nil},
		{"byte order mark", "\uFEFF" + Header + "\n", nil},
		{"empty input", "", ErrHeader},
		{"missing column", "domain_name,notify_url,notify_req_auth,notify_auth_key\n", ErrHeader},
		{"extra column", Header + ",extra\n", ErrHeader},
		{"other order", "notify_url,domain_name,notify_req_auth,notify_auth_key,region_id\n", ErrHeader},
		{"upper case", strings.ToUpper(Header) + "\n", ErrHeader},
		{"spaces", strings.ReplaceAll(Header, ",", ", ") + "\n", ErrHeader},
		{"data first", "live.example.com,https://h.example.com/cb,false,,\n", ErrHeader},
		{"broken quote", "\"domain_name,notify_url\n", ErrHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewParser(strings.NewReader(tc.input))
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("NewParser = %v, want %v", err, tc.wantErr)
			}
		})
	}
	_, err := NewParser(iotest.ErrReader(errors.New("disk on fire")))
	if !errors.Is(err, ErrRead) {
		t.Fatalf("NewParser on a failing reader = %v, want ErrRead", err)
	}
}

func TestParseLines(t *testing.T) {
	t.Parallel()
	type want struct {
		line   int64
		domain string
		row    model.Row // for good lines
		col    int       // for bad lines
		field  string
		reason string // substring
	}
	row := func(d, u string, auth bool, key, region string) model.Row {
		return model.Row{Domain: d, NotifyURL: u, ReqAuth: auth, AuthKey: model.Secret(key), Region: region}
	}
	for _, tc := range []struct {
		name     string
		body     string // after the header line
		good     []want
		bad      []want
		goodOnly bool
	}{
		{
			name: "valid lines",
			body: "a.example.com,https://h.example.com/cb,false,,\n" +
				"b.example.com,https://h.example.com/cb?x=1,true," + testKey + ",cn-beijing\n" +
				"c.example.com,http://h.example.com/cb,no,,\n",
			good: []want{
				{line: 2, row: row("a.example.com", "https://h.example.com/cb", false, "", "")},
				{line: 3, row: row("b.example.com", "https://h.example.com/cb?x=1", true, testKey, "cn-beijing")},
				{line: 4, row: row("c.example.com", "http://h.example.com/cb", false, "", "")},
			},
		},
		{
			name: "booleans in any case",
			body: "a.example.com,https://h.example.com/,TRUE," + testKey + ",\n" +
				"b.example.com,https://h.example.com/,Yes," + testKey + ",\n" +
				"c.example.com,https://h.example.com/,1," + testKey + ",\n" +
				"d.example.com,https://h.example.com/,False,,\n" +
				"e.example.com,https://h.example.com/,NO,,\n" +
				"f.example.com,https://h.example.com/,0,,\n",
			good: []want{
				{line: 2, row: row("a.example.com", "https://h.example.com/", true, testKey, "")},
				{line: 3, row: row("b.example.com", "https://h.example.com/", true, testKey, "")},
				{line: 4, row: row("c.example.com", "https://h.example.com/", true, testKey, "")},
				{line: 5, row: row("d.example.com", "https://h.example.com/", false, "", "")},
				{line: 6, row: row("e.example.com", "https://h.example.com/", false, "", "")},
				{line: 7, row: row("f.example.com", "https://h.example.com/", false, "", "")},
			},
		},
		{
			name: "bad booleans",
			body: "a.example.com,https://h.example.com/,,,\n" +
				"b.example.com,https://h.example.com/,y,,\n" +
				"c.example.com,https://h.example.com/, true,,\n" +
				"d.example.com,https://h.example.com/," + testKey + ",,\n",
			bad: []want{
				{line: 2, domain: "a.example.com", col: 3, field: "notify_req_auth", reason: "must be true, false"},
				{line: 3, domain: "b.example.com", col: 3, field: "notify_req_auth", reason: "must be true, false"},
				{line: 4, domain: "c.example.com", col: 3, field: "notify_req_auth", reason: "must be true, false"},
				{line: 5, domain: "d.example.com", col: 3, field: "notify_req_auth", reason: "must be true, false"},
			},
		},
		{
			name: "wrong column count",
			body: "a.example.com,https://h.example.com/,false,\n" +
				"b.example.com,https://h.example.com/,false,,,\n" +
				"just-one-field\n",
			bad: []want{
				{line: 2, domain: "a.example.com", reason: "has 4 columns, want 5"},
				{line: 3, domain: "b.example.com", reason: "has 6 columns, want 5"},
				{line: 4, reason: "has 1 columns, want 5"},
			},
		},
		{
			name: "validation shared with the run",
			body: "Live.Example.com,https://h.example.com/,false,,\n" +
				"a.example.com,,false,,\n" +
				"b.example.com,ftp://h.example.com/,false,,\n" +
				"c.example.com,https://h.example.com/,true,,\n" +
				"d.example.com,https://h.example.com/,true,short,\n" +
				"e.example.com,https://h.example.com/,false,,CN_SHANGHAI\n" +
				"f.example.com,https://user:pw@h.example.com/,false,,\n",
			bad: []want{
				{line: 2, col: 1, field: "domain_name", reason: "upper-case"},
				{line: 3, domain: "a.example.com", col: 2, field: "notify_url", reason: "is empty"},
				{line: 4, domain: "b.example.com", col: 2, field: "notify_url", reason: "only http and https"},
				{line: 5, domain: "c.example.com", col: 4, field: "notify_auth_key", reason: "required when notify_req_auth"},
				{line: 6, domain: "d.example.com", col: 4, field: "notify_auth_key", reason: "16 to 32 characters"},
				{line: 7, domain: "e.example.com", col: 5, field: "region_id", reason: "a-z, 0-9"},
				{line: 8, domain: "f.example.com", col: 2, field: "notify_url", reason: "credentials"},
			},
		},
		{
			name: "quoted fields and line numbers",
			body: "\"a.example.com\",\"https://h.example.com/a,b\",false,,\n" +
				"\n" + // empty lines are skipped but counted
				"b.example.com,\"https://h.example.com/\nx\",false,,\n" + // a line break inside a field: invalid URL
				"c.example.com,https://h.example.com/c,false,,\n",
			good: []want{
				{line: 2, row: row("a.example.com", "https://h.example.com/a,b", false, "", "")},
				{line: 6, row: row("c.example.com", "https://h.example.com/c", false, "", "")},
			},
			bad: []want{
				{line: 4, domain: "b.example.com", col: 2, field: "notify_url", reason: "control characters"},
			},
		},
		{
			name: "broken quoting, then going on",
			body: "a.example.com,https://h.example.com/\"x\"y,false,,\n" +
				"b.example.com,https://h.example.com/b,false,,\n",
			good: []want{
				{line: 3, row: row("b.example.com", "https://h.example.com/b", false, "", "")},
			},
			bad: []want{
				{line: 2, reason: "broken CSV quoting"},
			},
		},
		{
			name: "crlf line ends",
			body: "a.example.com,https://h.example.com/,false,,\r\nb.example.com,https://h.example.com/,true," + testKey + ",cn-shanghai\r\n",
			good: []want{
				{line: 2, row: row("a.example.com", "https://h.example.com/", false, "", "")},
				{line: 3, row: row("b.example.com", "https://h.example.com/", true, testKey, "cn-shanghai")},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, bad := parseAll(t, Header+"\n"+tc.body)
			if len(good) != len(tc.good) {
				t.Fatalf("%d good records, want %d: %+v (bad: %+v)", len(good), len(tc.good), good, bad)
			}
			for i, w := range tc.good {
				g := good[i]
				if g.Line != w.line || g.Row != w.row {
					t.Errorf("good %d = line %d %+v, want line %d %+v", i, g.Line, g.Row, w.line, w.row)
				}
			}
			if len(bad) != len(tc.bad) {
				t.Fatalf("%d bad lines, want %d: %+v", len(bad), len(tc.bad), bad)
			}
			for i, w := range tc.bad {
				b := bad[i]
				if b.Line != w.line || b.Column != w.col || b.Field != w.field || b.Domain != w.domain ||
					!strings.Contains(b.Reason, w.reason) {
					t.Errorf("bad %d = %+v, want %+v", i, b, w)
				}
				if strings.Contains(b.Error(), testKey) {
					t.Errorf("bad %d prints the auth key: %s", i, b.Error())
				}
			}
		})
	}
}

// A key written into the wrong column must not be printed either.
func TestLineErrorNeverPrintsFields(t *testing.T) {
	t.Parallel()
	body := testKey + ",https://h.example.com/,false,,\n" + // key as domain
		"a.example.com,https://h.example.com/," + testKey + ",,\n" + // key as boolean
		"a.example.com," + testKey + ",false,,\n" + // key as URL
		"a.example.com,https://h.example.com/,false,,," + testKey + "\n" + // extra column
		"a.example.com,https://h.example.com/,true," + testKey + "!,\n" + // bad key
		"a.example.com,https://h.example.com/,false,," + testKey + "\n" // key as region
	_, bad := parseAll(t, Header+"\n"+body)
	if len(bad) != 6 {
		t.Fatalf("%d bad lines, want 6: %+v", len(bad), bad)
	}
	for _, b := range bad {
		for _, frag := range []string{testKey, testKey[:10], testKey[8:]} {
			if strings.Contains(b.Error(), frag) {
				t.Errorf("%q prints (part of) the key", b.Error())
			}
		}
	}
}

func TestLineErrorText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		e    LineError
		want string
	}{
		{LineError{Line: 12, Column: 2, Field: "notify_url", Domain: "a.example.com", Reason: "is empty"},
			`line 12, column 2 (notify_url) of "a.example.com": is empty`},
		{LineError{Line: 3, Reason: "has 4 columns, want 5"}, `line 3: has 4 columns, want 5`},
		{LineError{Line: 4, Column: 1, Field: "domain_name", Reason: "is empty"}, `line 4, column 1 (domain_name): is empty`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestParseBool(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{ // 1 true, 0 false, -1 refused
		"true": 1, "TRUE": 1, "yes": 1, "Yes": 1, "1": 1, "on": 1, "ON": 1,
		"false": 0, "False": 0, "no": 0, "NO": 0, "0": 0, "off": 0, "Off": 0,
		"": -1, "y": -1, "n": -1, "t": -1, "2": -1, " true": -1, "true ": -1, "yesyes": -1, "offf": -1,
	} {
		v, ok := ParseBool(in)
		got := -1
		if ok {
			got = 0
			if v {
				got = 1
			}
		}
		if got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, v, ok)
		}
	}
}

// The parser's memory does not grow with the file: it holds one record.
func TestParserStreams(t *testing.T) {
	t.Parallel()
	const lines = 300000
	p, err := NewParser(&genReader{n: lines})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var peak uint64
	for {
		_, le, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || le != nil {
			t.Fatalf("Next: %v %v", err, le)
		}
		if n++; n%50000 == 0 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	if n != lines {
		t.Fatalf("read %d records, want %d", n, lines)
	}
	// The generated file is about 24 MB; the live heap stays a small fraction.
	if peak > 8<<20 {
		t.Errorf("live heap reached %d bytes while parsing", peak)
	}
}

// genReader generates an import file of n valid lines on the fly.
type genReader struct {
	n, i int
	buf  []byte
	head bool
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		switch {
		case !g.head:
			g.head = true
			g.buf = []byte(Header + "\n")
		case g.i < g.n:
			g.buf = []byte(genLine(g.i))
			g.i++
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// genLine is line i of a generated file: every third asks for auth, every
// fifth has a region.
func genLine(i int) string {
	auth, key, region := "false", "", ""
	if i%3 == 0 {
		auth, key = "true", fmt.Sprintf("genKey%012d", i)
	}
	if i%5 == 0 {
		region = "cn-beijing"
	}
	return fmt.Sprintf("gen%07d.example.com,https://hooks.example.com/snap/%d,%s,%s,%s\n", i, i, auth, key, region)
}

// The optional account column: empty is the default account, a name must
// be one reconcile_accounts accepts, and a bad one is reported like the
// other fields (line, column 6, field account) without its value.
func TestParseAccountColumn(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", MaxAccountLen)
	body := "a.example.com,https://h.example.com/a,false,,,\n" + // line 2: default account
		"b.example.com,https://h.example.com/b,false,,,tenant-a\n" + // 3
		"c.example.com,https://h.example.com/c,true," + testKey + ",cn-beijing,0acct.x_y-z\n" + // 4
		"d.example.com,https://h.example.com/d,false,,," + long + "\n" + // 5: 63 characters
		"e.example.com,https://h.example.com/e,false,,," + long + "a\n" + // 6: 64
		"f.example.com,https://h.example.com/f,false,,,default\n" + // 7
		"g.example.com,https://h.example.com/g,false,,,Tenant-A\n" + // 8
		"h.example.com,https://h.example.com/h,false,,,-tenant\n" + // 9
		"i.example.com,https://h.example.com/i,false,,,tenant a\n" + // 10
		"j.example.com,https://h.example.com/j,false,,," + testKey + "\n" + // 11: a key in the wrong column
		"k.example.com,https://h.example.com/k,false,,\n" + // 12: 5 columns in a 6-column file
		"l.example.com,https://h.example.com/l,maybe,,,BAD\n" + // 13: the first problem is reported
		"m.example.com,https://h.example.com/m,false,,,tenant-b\n" // 14
	good, bad := parseAll(t, HeaderWithAccount+"\n"+body)
	wantGood := map[int64]string{2: "", 3: "tenant-a", 4: "0acct.x_y-z", 5: long, 14: "tenant-b"}
	if len(good) != len(wantGood) {
		t.Fatalf("%d good records, want %d: %+v (bad %+v)", len(good), len(wantGood), good, bad)
	}
	for _, g := range good {
		acct, ok := wantGood[g.Line]
		if !ok || g.Row.Account != acct {
			t.Errorf("line %d: account %q, want %q (%v)", g.Line, g.Row.Account, acct, ok)
		}
	}
	if good[2].Row.AuthKey.Reveal() != testKey || good[2].Row.Region != "cn-beijing" {
		t.Errorf("line 4 = %+v", good[2].Row)
	}
	type want struct {
		line   int64
		col    int
		field  string
		reason string
	}
	wantBad := []want{
		{6, 6, "account", "longer than 63"},
		{7, 6, "account", `"default" is reserved`},
		{8, 6, "account", "lower-case letters"},
		{9, 6, "account", "starting with a letter or digit"},
		{10, 6, "account", "lower-case letters"},
		{11, 6, "account", "lower-case letters"},
		{12, 0, "", "has 5 columns, want 6 (" + HeaderWithAccount + ")"},
		{13, 3, "notify_req_auth", "must be"},
	}
	if len(bad) != len(wantBad) {
		t.Fatalf("%d bad lines, want %d: %+v", len(bad), len(wantBad), bad)
	}
	for i, w := range wantBad {
		b := bad[i]
		if b.Line != w.line || b.Column != w.col || b.Field != w.field || !strings.Contains(b.Reason, w.reason) {
			t.Errorf("bad %d = %+v, want %+v", i, b, w)
		}
		msg := b.Error()
		for _, v := range []string{testKey, "Tenant-A", "tenant a", long} {
			if strings.Contains(msg, v) {
				t.Errorf("%q prints the account field's value", msg)
			}
		}
		if w.col == 6 && !strings.HasPrefix(msg, fmt.Sprintf("line %d, column 6 (account) of ", w.line)) {
			t.Errorf("message %q does not name the line and field", msg)
		}
	}

	// Without the account column every row is of the default account, and a
	// sixth column is a column too many.
	good, bad = parseAll(t, Header+"\na.example.com,https://h.example.com/a,false,,\nb.example.com,https://h.example.com/b,false,,,x\n")
	if len(good) != 1 || good[0].Row.Account != "" || len(bad) != 1 || !strings.Contains(bad[0].Reason, "has 6 columns, want 5 ("+Header+")") {
		t.Fatalf("without the column: good %+v, bad %+v", good, bad)
	}
}

func TestCheckAccount(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"": true, "a": true, "0": true, "tenant-a": true, "t.e_n-a.n.t": true, "a-": true, strings.Repeat("x", 63): true,
		"default": false, "Default": false, "-a": false, ".a": false, "_a": false, "a b": false, "a/b": false,
		"é": false, "a\x00": false, strings.Repeat("x", 64): false, " a": false, "DEFAULT": false, "defaults": true,
	} {
		if got := CheckAccount(name) == ""; got != ok {
			t.Errorf("CheckAccount(%q) = %q, want ok %v", name, CheckAccount(name), ok)
		}
	}
}
