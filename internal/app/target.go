package app

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/config"
)

// Target is where a connection string leads once libpq's rules are applied
// (PG* variables, defaults): what every command logs before it changes
// anything. It holds no password.
type Target struct {
	// Host is the first host tried (a directory for a unix socket);
	// Fallbacks counts the other hosts of a multi-host string.
	Host      string
	Port      uint16
	Fallbacks int
	// Database is the database named by the string or PGDATABASE; empty
	// when neither names one (the server then picks the user's name).
	Database string
	User     string
}

// ParseTarget parses a connection string (URL or key=value; "" means the
// libpq defaults) as pgx will when connecting. A parse error wraps
// config.ErrUsage and never quotes the string (it may hold a password).
func ParseTarget(databaseURL string) (Target, *pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return Target{}, nil, fmt.Errorf("%w: --database-url: %s", config.ErrUsage, redactURL(err))
	}
	t := Target{Host: cc.Host, Port: cc.Port, Database: cc.Database, User: cc.User}
	// pgx lists the same host again for sslmode=prefer's plain retry:
	// count other hosts only.
	seen := map[string]bool{fmt.Sprint(cc.Host, ":", cc.Port): true}
	for _, f := range cc.Fallbacks {
		if k := fmt.Sprint(f.Host, ":", f.Port); !seen[k] {
			seen[k] = true
			t.Fallbacks++
		}
	}
	return t, cc, nil
}

// EffectiveDatabase is the database the server will open: Database, or,
// when none is named, the user's name (libpq's default).
func (t Target) EffectiveDatabase() string {
	if t.Database == "" {
		return t.User
	}
	return t.Database
}

// String renders t as user@host:port/database (no password), marking a
// database that nothing named.
func (t Target) String() string {
	host := t.Host
	if strings.HasPrefix(host, "/") {
		host = "[" + host + "]" // a unix socket directory
	}
	s := t.User + "@" + host + ":" + strconv.Itoa(int(t.Port)) + "/" + t.EffectiveDatabase()
	if t.Database == "" {
		s += " (no database named: the user's name)"
	}
	return s
}

// LogValue implements slog.LogValuer: host, port, database, user (and
// database_named=false when the database is libpq's default).
func (t Target) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("host", t.Host), slog.Int("port", int(t.Port)),
		slog.String("database", t.EffectiveDatabase()), slog.String("user", t.User)}
	if t.Database == "" {
		attrs = append(attrs, slog.Bool("database_named", false))
	}
	if t.Fallbacks > 0 {
		attrs = append(attrs, slog.Int("fallback_hosts", t.Fallbacks))
	}
	return slog.GroupValue(attrs...)
}

// RequireDatabase returns a config.ErrUsage error unless t names a
// database: a command that changes a schema must not fall back to
// whichever database libpq picks.
func (t Target) RequireDatabase(command string) error {
	if t.Database != "" {
		return nil
	}
	return config.Usagef("%s: the connection string names no database and PGDATABASE is not set, so Postgres would "+
		"open %q (the user's name) on %s:%d; name the database, e.g. --database-url postgres://%s@%s:%d/<database>",
		command, t.User, t.Host, t.Port, t.User, t.Host, t.Port)
}
