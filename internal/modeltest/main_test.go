package modeltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/reconcile/reconcile/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// envBinary, when set, names a reconcile binary for the SIGKILL steps instead
// of building ./cmd/reconcile (the same variable as cmd/reconcile's tests).
const envBinary = "RECONCILE_E2E_BINARY"

// binary is the reconcile binary of the subprocess steps, built on first
// use into a directory of the top-level test (removed when it ends).
type binary struct {
	dir  string
	once sync.Once
	path string
	err  error
}

func newBinary(t *testing.T) *binary { return &binary{dir: t.TempDir()} }

func (b *binary) get(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envBinary); p != "" {
		return p
	}
	b.once.Do(func() {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		out := filepath.Join(b.dir, "reconcile")
		cmd := exec.Command(goBin, "build", "-o", out, "github.com/reconcile/reconcile/cmd/reconcile")
		if o, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, o)
			return
		}
		b.path = out
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}
