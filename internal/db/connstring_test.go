package db_test

import (
	"testing"

	"github.com/reconcile/reconcile/internal/db"
)

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"postgres://u:p@h:5432/old?sslmode=disable", "postgres://u:p@h:5432/new?sslmode=disable"},
		{"postgresql://h/old?dbname=other&sslmode=disable", "postgresql://h/new?sslmode=disable"},
		{"host=h user=u dbname=old", "host=h user=u dbname=old dbname=new"},
		{"", "dbname=new"},
	} {
		got, err := db.WithDatabase(tt.in, "new")
		if err != nil || got != tt.want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := db.WithDatabase("postgres://h:bad port/x", "new"); err == nil {
		t.Error("an unparseable URL gave no error")
	}
}
