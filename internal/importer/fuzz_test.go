package importer

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/validate"
)

// FuzzImportCSV feeds arbitrary files to the parser and validation (no
// database) and checks that:
//   - nothing panics, and reading always ends;
//   - a file is refused only for its header (ErrHeader);
//   - every good record passes validate.Row (import and run agree), and
//     written back as CSV, parses to the same row;
//   - every bad line names a line after the header and a real column, and
//     prints a domain only when it is a valid one;
//   - no message prints a value shaped like an auth key from another column.
//
// Seeds: testdata/fuzz/FuzzImportCSV. Run with
// go test -fuzz FuzzImportCSV ./internal/importer/
func FuzzImportCSV(f *testing.F) {
	f.Add([]byte(Header + "\nlive.example.com,https://h.example.com/cb,true,Key0123456789abcdef,cn-shanghai\n"))
	f.Add([]byte(HeaderWithAccount + "\nlive.example.com,https://h.example.com/cb,false,,,tenant-a\n" +
		"b.example.com,https://h.example.com/cb,false,,,Key0123456789abcdefX\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := NewParser(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatalf("NewParser: %v, want ErrHeader", err)
			}
			return
		}
		// ref reads the same records, to see the raw fields of each.
		ref := csv.NewReader(bytes.NewReader(data))
		ref.FieldsPerRecord = -1
		if _, err := ref.Read(); err != nil {
			t.Fatalf("reference reader: header: %v", err)
		}
		var good []Record
		prev := int64(1)
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatal("more records than bytes: the parser does not advance")
			}
			rec, le, err := p.Next()
			raw, rerr := ref.Read()
			if errors.Is(err, io.EOF) {
				if !errors.Is(rerr, io.EOF) {
					t.Fatalf("parser ended, reference reader did not: %v", rerr)
				}
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if rec.Line <= prev {
				t.Fatalf("record at line %d after line %d", rec.Line, prev)
			}
			prev = rec.Line
			if le == nil {
				if verr := validate.Row(rec.Row); verr != nil {
					t.Fatalf("good record at line %d fails validation: %v", rec.Line, verr)
				}
				if reason := CheckAccount(rec.Row.Account); reason != "" || rec.Row.Account != "" && !p.HasAccount() {
					t.Fatalf("good record at line %d has account %q: %s", rec.Line, rec.Row.Account, reason)
				}
				good = append(good, rec)
				continue
			}
			checkLineError(t, le, rec, raw, rerr)
		}
		checkRoundTrip(t, good)
	})
}

func checkLineError(t *testing.T, le *LineError, rec Record, raw []string, rerr error) {
	t.Helper()
	if le.Line != rec.Line || le.Line < 2 {
		t.Fatalf("bad line %+v for record at line %d", le, rec.Line)
	}
	if le.Column < 0 || le.Column > len(Columns) || (le.Column == 0) != (le.Field == "") ||
		le.Column > 0 && Columns[le.Column-1] != le.Field {
		t.Fatalf("bad line names column %d field %q", le.Column, le.Field)
	}
	if le.Domain != "" && validate.Domain(le.Domain) != "" {
		t.Fatalf("bad line prints an invalid domain %q", le.Domain)
	}
	if le.Reason == "" {
		t.Fatalf("bad line without a reason: %+v", le)
	}
	if rerr != nil || len(raw) == 0 {
		return // broken quoting: the message holds no field
	}
	msg := le.Error()
	for i, f := range raw {
		if i == 0 || !keyShaped(f) || strings.Contains(raw[0], f) {
			continue
		}
		if strings.Contains(msg, f) {
			t.Fatalf("message %q prints column %d's value", msg, i+1)
		}
	}
}

// keyShaped reports whether s looks like an auth key that no message
// template could contain by chance: 16+ letters and digits with an
// upper-case letter and a digit.
func keyShaped(s string) bool {
	if len(s) < 16 {
		return false
	}
	var upper, digit bool
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z':
		default:
			return false
		}
	}
	return upper && digit
}

// checkRoundTrip writes the good records back as CSV (with the account
// column) and parses them again.
func checkRoundTrip(t *testing.T, good []Record) {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(Columns)
	for _, r := range good {
		auth := "false"
		if r.Row.ReqAuth {
			auth = "true"
		}
		_ = w.Write([]string{r.Row.Domain, r.Row.NotifyURL, auth, r.Row.AuthKey.Reveal(), r.Row.Region, r.Row.Account})
	}
	w.Flush()
	p, err := NewParser(&buf)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	for i := 0; ; i++ {
		rec, le, err := p.Next()
		if errors.Is(err, io.EOF) {
			if i != len(good) {
				t.Fatalf("round trip: %d records, want %d", i, len(good))
			}
			return
		}
		if err != nil || le != nil {
			t.Fatalf("round trip: record %d: %v %v", i, err, le)
		}
		if i >= len(good) || rec.Row != good[i].Row {
			t.Fatalf("round trip: record %d = %+v, want %+v", i, rec.Row, good[i].Row)
		}
	}
}
