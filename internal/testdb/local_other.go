//go:build !unix

package testdb

import "context"

func startLocal(context.Context) (string, func() error, error) {
	return "", nil, errUnsupported
}
