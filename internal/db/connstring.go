package db

import (
	"fmt"
	"net/url"
	"strings"
)

// WithDatabase returns connString (a postgres:// URL or libpq key=value
// pairs; "" means the libpq defaults) with its database replaced by name.
func WithDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", fmt.Errorf("db: parse connection URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		q := u.Query()
		if q.Has("dbname") {
			q.Del("dbname")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// key=value: a later keyword wins.
	return strings.TrimSpace(connString + " dbname=" + name), nil
}
