package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// StatusGroup is one line of StatusSummary: the desired rows whose latest
// outcome is Outcome ("(none)" when never attempted).
type StatusGroup struct {
	Outcome       string
	Rows          int64
	FirstCode     string // error code of the first row by name ("" when none)
	ExampleDomain string // the first row by name
}

// DomainMessage is a domain with its latest error message.
type DomainMessage struct {
	Domain, Message string
}

const (
	sqlStatusSummary = `SELECT coalesce(outcome, '(none)'), count(*),
       coalesce((array_agg(error_code ORDER BY domain_name))[1], ''), (array_agg(domain_name ORDER BY domain_name))[1]
FROM snapshot_callback_status GROUP BY 1 ORDER BY 1`

	sqlNotDoneSamples = `SELECT domain_name, coalesce(error_message, '') FROM snapshot_callback_status
WHERE outcome IN ('invalid', 'failed') ORDER BY domain_name LIMIT $1`
)

// StatusSummary groups the desired rows by their latest outcome (the
// status view), in outcome order. One statement.
func StatusSummary(ctx context.Context, q Querier) ([]StatusGroup, error) {
	rows, err := q.Query(ctx, sqlStatusSummary)
	if err != nil {
		return nil, fmt.Errorf("db: status summary: %w", err)
	}
	var out []StatusGroup
	var g StatusGroup
	_, err = pgx.ForEachRow(rows, []any{&g.Outcome, &g.Rows, &g.FirstCode, &g.ExampleDomain}, func() error {
		out = append(out, g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: status summary: %w", err)
	}
	return out, nil
}

// NotDoneSamples returns up to limit desired rows whose latest outcome is
// invalid or failed, by name, with their error message. One statement.
func NotDoneSamples(ctx context.Context, q Querier, limit int) ([]DomainMessage, error) {
	rows, err := q.Query(ctx, sqlNotDoneSamples, limit)
	if err != nil {
		return nil, fmt.Errorf("db: not-done samples: %w", err)
	}
	var out []DomainMessage
	var m DomainMessage
	_, err = pgx.ForEachRow(rows, []any{&m.Domain, &m.Message}, func() error {
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: not-done samples: %w", err)
	}
	return out, nil
}

// RecreateDatabase drops the database name (forcing its sessions off) and
// creates it empty, on an admin connection. name must be a plain
// identifier chosen by the program, never user input.
func RecreateDatabase(ctx context.Context, q Querier, name string) error {
	id := pgx.Identifier{name}.Sanitize()
	for _, stmt := range []string{"DROP DATABASE IF EXISTS " + id + " WITH (FORCE)", "CREATE DATABASE " + id} {
		if _, err := q.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("db: %s: %w", stmt, err)
		}
	}
	return nil
}
