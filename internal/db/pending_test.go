package db_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/db"
	"github.com/reconcile/reconcile/internal/model"
	"github.com/reconcile/reconcile/internal/testdb"
	"github.com/reconcile/reconcile/internal/testutil"
)

func TestPendingSemantics(t *testing.T) {
	t.Parallel()
	const dom = "live.example.com"
	base := desired{domain: dom, url: "https://cb.example.com/a"}
	edited := desired{domain: dom, url: "https://cb.example.com/b"}
	edited2 := desired{domain: dom, url: "https://cb.example.com/c"}

	// A step either sets the desired row or records an outcome for its
	// current values in a new run.
	type step struct {
		set     *desired
		outcome model.Outcome
	}
	set := func(d desired) step { return step{set: &d} }
	rec := func(o model.Outcome) step { return step{outcome: o} }

	tests := []struct {
		name             string
		steps            []step
		pending, applied bool
		invalidUnchanged bool
	}{
		{name: "never attempted", steps: []step{set(base)}, pending: true},
		{name: "applied, same values", steps: []step{set(base), rec(model.OutcomeApplied)}},
		{name: "already_exists is done", steps: []step{set(base), rec(model.OutcomeAlreadyExists)}},
		{name: "applied then edited", steps: []step{set(base), rec(model.OutcomeApplied), set(edited)}, pending: true, applied: true},
		{name: "updated is done", steps: []step{set(base), rec(model.OutcomeApplied), set(edited), rec(model.OutcomeUpdated)}},
		{name: "invalid, same values", steps: []step{set(base), rec(model.OutcomeInvalid)}, invalidUnchanged: true},
		{name: "invalid then edited", steps: []step{set(base), rec(model.OutcomeInvalid), set(edited)}, pending: true},
		{name: "failed", steps: []step{set(base), rec(model.OutcomeFailed)}, pending: true},
		{name: "failed twice", steps: []step{set(base), rec(model.OutcomeFailed), rec(model.OutcomeFailed)}, pending: true},
		{name: "applied, edited, failed", steps: []step{set(base), rec(model.OutcomeApplied), set(edited), rec(model.OutcomeFailed)}, pending: true, applied: true},
		{name: "applied, edited, invalid", steps: []step{set(base), rec(model.OutcomeApplied), set(edited), rec(model.OutcomeInvalid)}, applied: true, invalidUnchanged: true},
		{name: "applied, edited, invalid, edited", steps: []step{set(base), rec(model.OutcomeApplied), set(edited), rec(model.OutcomeInvalid), set(edited2)}, pending: true, applied: true},
		{name: "applied, edited back", steps: []step{set(base), rec(model.OutcomeApplied), set(edited), set(base)}},
		{name: "applied then re-saved unchanged", steps: []step{set(base), rec(model.OutcomeApplied), set(base)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tdb := testdb.New(t)
			pool := tdb.Pool
			ctx := testutil.Context(t)
			for _, s := range tt.steps {
				if s.set != nil {
					upsertDesired(t, pool, *s.set)
				} else {
					record(t, pool, dom, s.outcome)
				}
			}
			rows := allPending(t, pool, 10)
			if got := len(rows) == 1; got != tt.pending {
				t.Fatalf("pending = %v (rows %+v), want %v", got, rows, tt.pending)
			}
			if tt.pending && rows[0].Applied != tt.applied {
				t.Fatalf("Applied = %v, want %v", rows[0].Applied, tt.applied)
			}
			v := viewOf(t, pool)[dom]
			if v.pending != tt.pending || v.invalidUnchanged != tt.invalidUnchanged {
				t.Fatalf("view: %+v, want pending %v invalid_unchanged %v", v, tt.pending, tt.invalidUnchanged)
			}
			if tt.pending && v.everDone != rows[0].Applied {
				t.Fatalf("view ever_done %v != PendingPage Applied %v", v.everDone, rows[0].Applied)
			}
			n, err := db.CountPending(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{true: 1, false: 0}[tt.pending]; n != want {
				t.Fatalf("CountPending = %d, want %d", n, want)
			}
			n, err = db.CountInvalidUnchanged(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{true: 1, false: 0}[tt.invalidUnchanged]; n != want {
				t.Fatalf("CountInvalidUnchanged = %d, want %d", n, want)
			}
		})
	}
}

func TestPendingPageKeyset(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	pool := tdb.Pool
	ctx := testutil.Context(t)
	// 1,234 rows in an order that is not insertion order, mixed case and
	// punctuation so the collation matters; every third one is done, every
	// seventh invalid with unchanged values.
	if _, err := pool.Exec(ctx, `INSERT INTO desired_snapshot_callbacks (domain_name, notify_url)
SELECT md5(i::text) || CASE WHEN i % 2 = 0 THEN '.Example.com' ELSE '-x.example.com' END, 'https://cb/' || i
FROM generate_series(1, 1234) i`); err != nil {
		t.Fatal(err)
	}
	run := beginRun(t, pool)
	var rs []model.Result
	rows, err := pool.Query(ctx, `SELECT domain_name, fingerprint, row_number() OVER (ORDER BY notify_url) FROM desired_snapshot_callbacks`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d, fp string
		var i int
		if err := rows.Scan(&d, &fp, &i); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%3 == 0:
			rs = append(rs, model.Result{Domain: d, Outcome: model.OutcomeApplied, Fingerprint: fp, Attempts: 1})
		case i%7 == 0:
			rs = append(rs, model.Result{Domain: d, Outcome: model.OutcomeInvalid, Fingerprint: fp, ErrorCode: "Invalid.NotifyUrl"})
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WriteOutcomes(ctx, pool, run, rs, db.RunCounters{}); err != nil {
		t.Fatal(err)
	}

	var want []string
	r2, err := pool.Query(ctx, `SELECT domain_name FROM snapshot_callback_status WHERE pending ORDER BY domain_name`)
	if err != nil {
		t.Fatal(err)
	}
	for r2.Next() {
		var d string
		if err := r2.Scan(&d); err != nil {
			t.Fatal(err)
		}
		want = append(want, d)
	}
	if len(want) < 500 {
		t.Fatalf("only %d pending rows; the fixture is wrong", len(want))
	}

	var got []string
	pages := 0
	after := ""
	for {
		page, err := db.PendingPage(ctx, pool, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page {
			got = append(got, r.Domain)
		}
		if len(page) < 100 {
			break
		}
		after = page[len(page)-1].Domain
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %d rows, view has %d pending; first differences: got %v want %v", len(got), len(want), head(got), head(want))
	}
	if wantPages := len(want)/100 + 1; pages != wantPages {
		t.Fatalf("%d pages, want %d", pages, wantPages)
	}
	n, err := db.CountPending(ctx, pool)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("CountPending = %d, %v; want %d", n, err, len(want))
	}
	if _, err := db.PendingPage(ctx, pool, "", 0); err == nil {
		t.Fatal("PendingPage with limit 0 succeeded")
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestFingerprint(t *testing.T) {
	t.Parallel()
	tdb := testdb.New(t)
	pool := tdb.Pool
	ctx := testutil.Context(t)
	base := desired{url: "https://cb.example.com/x", reqAuth: true, key: "secret-key", region: "cn-shanghai"}
	variants := map[string]func(d *desired){
		"base":            func(*desired) {},
		"url":             func(d *desired) { d.url += "y" },
		"req auth":        func(d *desired) { d.reqAuth = false },
		"auth key":        func(d *desired) { d.key = "secret-kez" },
		"auth key absent": func(d *desired) { d.key = "" },
		"region":          func(d *desired) { d.region = "cn-beijing" },
		"region absent":   func(d *desired) { d.region = "" },
	}
	// The same values under different domains must also differ (the domain
	// is part of the fingerprint), so compare the fingerprint of
	// "<variant>.example.com" computed with the base domain name.
	for name, change := range variants {
		d := base
		change(&d)
		d.domain = strings.ReplaceAll(name, " ", "-") + ".example.com"
		upsertDesired(t, pool, d)
	}
	rows := allPending(t, pool, 3)
	if len(rows) != len(variants) {
		t.Fatalf("%d pending rows, want %d", len(rows), len(variants))
	}
	view := viewOf(t, pool)
	seen := map[string]string{}
	for _, r := range rows {
		if r.Fingerprint != view[r.Domain].fingerprint {
			t.Errorf("%s: PendingPage fingerprint %s, view %s", r.Domain, r.Fingerprint, view[r.Domain].fingerprint)
		}
		if strings.Contains(r.Fingerprint, "secret") {
			t.Errorf("fingerprint contains the key")
		}
		// Recompute as if the row had the base domain: only the field that
		// changed may make it differ.
		var fp string
		if err := pool.QueryRow(ctx, `SELECT reconcile_fingerprint('d', notify_url, notify_req_auth, notify_auth_key, region_id)
			FROM desired_snapshot_callbacks WHERE domain_name = $1`, r.Domain).Scan(&fp); err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[fp]; dup {
			t.Errorf("%s and %s have the same fingerprint", r.Domain, other)
		}
		seen[fp] = r.Domain
		if r.Domain == "auth-key.example.com" && r.AuthKey.Reveal() != "secret-kez" {
			t.Errorf("AuthKey not read back")
		}
		if got := fmt.Sprint(r.AuthKey); strings.Contains(got, "secret") {
			t.Errorf("AuthKey formats as %q", got)
		}
	}
	// The domain is part of the fingerprint too.
	var a, b string
	if err := pool.QueryRow(ctx, `SELECT reconcile_fingerprint('a', 'u', false, NULL, NULL), reconcile_fingerprint('b', 'u', false, NULL, NULL)`).Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("domain not in the fingerprint")
	}
	// Editing a field changes the stored (generated) fingerprint.
	before := fingerprintOf(t, pool, "base.example.com")
	if _, err := pool.Exec(ctx, `UPDATE desired_snapshot_callbacks SET notify_auth_key = 'other' WHERE domain_name = 'base.example.com'`); err != nil {
		t.Fatal(err)
	}
	if fingerprintOf(t, pool, "base.example.com") == before {
		t.Fatal("fingerprint unchanged after the auth key changed")
	}
}
