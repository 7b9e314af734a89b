package db_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconcile/reconcile/internal/db"
)

// PendingPage is how a run reads its work: keyset pages of the rows that are
// not done, in domain_name order, each page one statement. Pass the last
// domain of a page to get the next; a page shorter than the limit is the
// last. (Not run: it needs a migrated database in DATABASE_URL.)
func ExamplePendingPage() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	const limit = 1000
	after := ""
	for {
		rows, err := db.PendingPage(ctx, pool, after, limit)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, r := range rows {
			verb := "add"
			if r.Applied {
				verb = "update"
			}
			fmt.Println(verb, r.Domain) // r.AuthKey prints as [REDACTED]
		}
		if len(rows) < limit {
			return
		}
		after = rows[len(rows)-1].Domain
	}
}
