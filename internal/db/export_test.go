package db

// SQLPendingPage exposes the pending query to the plan test.
const SQLPendingPage = sqlPendingPage
