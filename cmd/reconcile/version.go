package main

import (
	"fmt"
	"runtime/debug"

	"github.com/reconcile/reconcile/internal/app"
)

// Stamps set at link time by builds that carry no VCS information (the
// Dockerfile's, whose context has no .git):
//
//	go build -ldflags "-X main.stampVersion=v1.2.3 -X main.stampRevision=0123abc" ./cmd/reconcile
//
// Empty means not stamped.
var (
	stampVersion  string
	stampRevision string
)

// versionInfo is what `reconcile version` prints.
type versionInfo struct {
	// Version is the module version (a tag, or Go's pseudo-version of the
	// commit), else the stamp, else app.DevVersion. It is the version
	// recorded in reconcile_runs and sent in the User-Agent.
	Version string
	// Revision is the VCS revision, else the stamp; "" when unknown.
	Revision string
	// Modified: the build's work tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// buildVersion reads the version from bi (runtime/debug.ReadBuildInfo; nil
// when the binary has none), falling back to the link-time stamps for what
// bi does not know.
func buildVersion(bi *debug.BuildInfo, stampVersion, stampRevision string) versionInfo {
	v := versionInfo{Version: app.DevVersion}
	if bi != nil {
		v.GoVersion = bi.GoVersion
		if m := bi.Main.Version; m != "" && m != "(devel)" {
			v.Version = m
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == app.DevVersion && stampVersion != "" {
		v.Version = stampVersion
	}
	if v.Revision == "" {
		v.Revision = stampRevision
	}
	return v
}

// String is the line `reconcile version` prints, for example
// "reconcile v1.2.3 (revision 0123abc, modified; go1.26.8)".
func (v versionInfo) String() string {
	rev := v.Revision
	if rev == "" {
		rev = "unknown"
	}
	if v.Modified {
		rev += ", modified"
	}
	s := fmt.Sprintf("reconcile %s (revision %s", v.Version, rev)
	if v.GoVersion != "" {
		s += "; " + v.GoVersion
	}
	return s + ")"
}
