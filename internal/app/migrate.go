package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/reconcile/reconcile/internal/db"
)

// Migrate performs `reconcile migrate`: it applies the embedded migrations on
// one dedicated connection. Safe to run again, and from two processes at once.
// It refuses (config.ErrUsage, exit 2) a connection string that names no
// database, and logs the target before it connects.
func Migrate(ctx context.Context, databaseURL string, env Env) error {
	t, cc, err := ParseTarget(databaseURL)
	if err != nil {
		return err
	}
	if err := t.RequireDatabase("migrate"); err != nil {
		return err
	}
	env.Logger.Info("migrating", "target", t)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("connecting to Postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	before, _ := db.SchemaVersion(ctx, conn)
	if err := db.Migrate(ctx, conn); err != nil {
		return err
	}
	after, err := db.SchemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	env.Logger.Info("schema migrated", "target", t, "from_version", before, "to_version", after)
	return nil
}
