package db

// SQLPendingPage exposes the pending query to the plan test.
const SQLPendingPage = sqlPendingPage

// PageInSQL exposes the per-account page queries ("pending" or "desired")
// to the plan test: the text run for account, whose parameters are $1
// after, $2 limit and, for a named account, $3 the account.
func PageInSQL(which, account string) string {
	q := map[string]accountQuery{"pending": sqlPendingPageIn, "desired": sqlDesiredPageIn}[which]
	sql, _ := q.with(account)
	return sql
}
