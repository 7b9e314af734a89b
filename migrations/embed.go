// Package migrations holds the schema of reconcile as numbered SQL files
// (NNN_name.sql, applied in order by tern) and embeds them into the binary.
// internal/db applies them; nothing else should read these files.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files, at the root of the returned file
// system. It is read-only and safe for concurrent use.
func FS() fs.FS { return files }
