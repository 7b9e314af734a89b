package db

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Bounds the job sets on its own connections (ConfigureConn). Every wait of
// a database call is also bounded on the client (a context deadline: the
// caller's, --db-retry-deadline in `reconcile run`); these make the server
// and the kernel give up too, so that a stuck or partitioned peer frees its
// locks and its session.
const (
	// StatementTimeout is statement_timeout: the server cancels any one
	// statement of a run after this long. No statement of a run comes near
	// it (a page, an outcome batch, a count over a million rows take well
	// under a second on the development machine).
	StatementTimeout = 60 * time.Second
	// LockTimeout is lock_timeout: the longest a statement waits for a lock
	// another session holds (SQLSTATE 55P03, retried like a lost connection
	// until --db-retry-deadline). A waiter also queues every later locker
	// behind it, so it must not wait forever.
	LockTimeout = 10 * time.Second
	// IdleInTransactionTimeout is idle_in_transaction_session_timeout: the
	// job never holds a transaction open while it waits for anything but
	// the database, so a session idle inside a transaction this long belongs
	// to a frozen or partitioned process; the server ends it and frees its
	// locks.
	IdleInTransactionTimeout = 30 * time.Second

	// TCPKeepAliveIdle, TCPKeepAliveInterval and TCPKeepAliveCount are the
	// TCP keepalives of the job's sockets, on both ends (the dialer here;
	// tcp_keepalives_* on the server): a peer that vanished without a FIN or
	// RST (partition, powered-off host) is noticed after about Idle +
	// Interval×Count = 30 s of silence instead of the kernel's two hours.
	TCPKeepAliveIdle     = 15 * time.Second
	TCPKeepAliveInterval = 5 * time.Second
	TCPKeepAliveCount    = 3
	// TCPUserTimeout is TCP_USER_TIMEOUT (Linux; tcp_user_timeout on the
	// server): data written but not acknowledged for this long ends the
	// connection, which keepalives alone do not cover.
	TCPUserTimeout = 30 * time.Second
	// ConnectTimeout bounds opening one connection (TCP connect, TLS, the
	// startup exchange) when the connection string sets no connect_timeout.
	ConnectTimeout = 10 * time.Second
)

// QueryExecModeParam is the connection-string parameter with which a user
// picks pgx's query mode explicitly (cache_statement, cache_describe,
// describe_exec, exec, simple_protocol); ConfigureConn leaves it alone then.
const QueryExecModeParam = "default_query_exec_mode"

// DefaultQueryExecMode is the query mode the job uses unless the connection
// string names one: statement descriptions are cached per connection and
// every execution is a self-contained Parse/Bind/Execute of the unnamed
// statement, in one round trip. Unlike pgx's default (named prepared
// statements, "stmtcache_…"), it works through any connection pooler —
// PgBouncer in transaction or session pooling, with or without its
// prepared-statement support — because nothing outlives one round trip on a
// server connection.
const DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe

// ConnOptions says what ConfigureConn sets.
type ConnOptions struct {
	// ServerTimeouts adds statement_timeout, lock_timeout,
	// idle_in_transaction_session_timeout and the server's TCP keepalive and
	// user timeout settings to the startup parameters (each unless the
	// connection string sets it). Commands whose statements may legitimately
	// run long (an import's COPY) leave it off.
	ServerTimeouts bool
}

// ConfigureConn prepares cfg (from pgx.ParseConfig or pgxpool.ParseConfig,
// built from connString) for the job: the query mode (DefaultQueryExecMode,
// unless connString sets QueryExecModeParam), a dialer with TCP keepalives,
// TCP_USER_TIMEOUT, ConnectTimeout (unless connString sets connect_timeout),
// and with o.ServerTimeouts the server-side
// bounds. It changes cfg in place.
func ConfigureConn(cfg *pgx.ConnConfig, connString string, o ConnOptions) {
	if !explicitQueryExecMode(connString) {
		cfg.DefaultQueryExecMode = DefaultQueryExecMode
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	dialer := &net.Dialer{
		Timeout: cfg.ConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: TCPKeepAliveIdle,
			Interval: TCPKeepAliveInterval, Count: TCPKeepAliveCount},
		Control: setTCPUserTimeout,
	}
	cfg.DialFunc = dialer.DialContext
	if o.ServerTimeouts {
		if cfg.RuntimeParams == nil {
			cfg.RuntimeParams = map[string]string{}
		}
		for k, v := range ServerSettings() {
			if _, ok := cfg.RuntimeParams[k]; !ok {
				cfg.RuntimeParams[k] = v
			}
		}
	}
}

// ServerSettings returns the startup parameters ConfigureConn adds with
// ServerTimeouts, as the server spells them (milliseconds and seconds).
func ServerSettings() map[string]string {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	s := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	return map[string]string{
		"statement_timeout":                   ms(StatementTimeout),
		"lock_timeout":                        ms(LockTimeout),
		"idle_in_transaction_session_timeout": ms(IdleInTransactionTimeout),
		"tcp_keepalives_idle":                 s(TCPKeepAliveIdle),
		"tcp_keepalives_interval":             s(TCPKeepAliveInterval),
		"tcp_keepalives_count":                strconv.Itoa(TCPKeepAliveCount),
		"tcp_user_timeout":                    ms(TCPUserTimeout),
	}
}

// DropServerSettings removes from cfg the startup parameters ServerSettings
// added (after a pooler refused them: see IsUnsupportedStartupParameter).
func DropServerSettings(cfg *pgx.ConnConfig, connString string) {
	explicit := explicitParams(connString)
	for k := range ServerSettings() {
		if !explicit[k] {
			delete(cfg.RuntimeParams, k)
		}
	}
}

// IsUnsupportedStartupParameter reports whether err is a connection
// pooler's refusal of a startup parameter it does not know (PgBouncer:
// "unsupported startup parameter: statement_timeout", unless the parameter
// is in its ignore_startup_parameters). Postgres itself accepts every
// settable parameter.
func IsUnsupportedStartupParameter(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "unsupported startup parameter")
}

func explicitQueryExecMode(connString string) bool {
	return explicitParams(connString)[QueryExecModeParam]
}

// explicitParams returns the runtime parameters connString names (pgconn
// keeps every key it does not know as a runtime parameter).
func explicitParams(connString string) map[string]bool {
	pc, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil
	}
	m := make(map[string]bool, len(pc.RuntimeParams))
	for k := range pc.RuntimeParams {
		m[k] = true
	}
	return m
}
