//go:build unix

package testdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// localPort is the port number of the local cluster. It names the socket
// file (.s.PGSQL.<port>) in the cluster's own directory; no TCP port is
// opened, so it cannot collide with anything.
const localPort = 5432

// startLocal initdb's a throwaway cluster in a temporary directory and starts
// it. As root it runs the binaries as the "postgres" user (else "nobody").
func startLocal(ctx context.Context) (adminURL string, stop func() error, err error) {
	initdb, pgCtl, err := findBinaries()
	if err != nil {
		return "", nil, err
	}
	cred, err := credential()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "reconcile-testdb-")
	if err != nil {
		return "", nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
	}
	data := filepath.Join(dir, "data")
	run := func(ctx context.Context, name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), args[0], err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(ctx, initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
		"--no-sync", "--no-instructions"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	conf := fmt.Sprintf("\nlisten_addresses = ''\nport = %d\nunix_socket_directories = '%s'\n"+
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n", localPort, dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if err := run(ctx, pgCtl, "start", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}

	// The watchdog stops the cluster and removes the directory once this
	// process has exited, in case Main does not get to (crash, timeout, no
	// TestMain). It runs in its own session so signals to our process group
	// do not reach it.
	script := `while [ -d "/proc/$1" ]; do sleep 1; done; "$2" stop -D "$3" -m immediate >/dev/null 2>&1; rm -rf "$4"`
	wd := exec.Command("/bin/sh", "-c", script, "testdb-watchdog", strconv.Itoa(os.Getpid()), pgCtl, data, dir)
	wd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	if err := wd.Start(); err != nil {
		_ = run(context.WithoutCancel(ctx), pgCtl, "stop", "-D", data, "-m", "immediate")
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start watchdog: %w", err)
	}
	watchdog := wd.Process
	go func() { _ = wd.Wait() }()

	stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := run(ctx, pgCtl, "stop", "-D", data, "-m", "fast", "-w")
		_ = watchdog.Kill()
		if rmErr := os.RemoveAll(dir); err == nil {
			err = rmErr
		}
		return err
	}
	return fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", dir, localPort), stop, nil
}

// findBinaries looks for initdb and pg_ctl in PATH, then in the newest
// /usr/lib/postgresql/<version>/bin.
func findBinaries() (initdb, pgCtl string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if c := filepath.Join(filepath.Dir(p), "pg_ctl"); isExecutable(c) {
			return p, c, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		i, c := filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl")
		if isExecutable(i) && isExecutable(c) {
			return i, c, nil
		}
	}
	return "", "", errors.New("initdb and pg_ctl not found in PATH or /usr/lib/postgresql/*/bin")
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// credential returns nil when not root, else the credentials of the
// "postgres" user, or of "nobody".
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false}, nil
	}
	return nil, errors.New("running as root, and no postgres or nobody user to run initdb as")
}
