package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/reconcile/reconcile/internal/app"
)

// repoRoot is the repository's top directory, seen from this package.
const repoRoot = "../.."

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]struct {
		Build *struct {
			Context string            `yaml:"context"`
			Args    map[string]string `yaml:"args"`
		} `yaml:"build"`
		Image       string   `yaml:"image"`
		PullPolicy  string   `yaml:"pull_policy"`
		Command     []string `yaml:"command"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

// TestComposeBuildsOnceAndWaitsForHealth: docker-compose.yml builds the
// image in one service, stamped with VERSION and REVISION, and the others
// reuse it without pulling; the simulator has a healthcheck that works in
// the image (the binary probing itself: distroless has no shell) and the
// job waits for it to be healthy.
func TestComposeBuildsOnceAndWaitsForHealth(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	var builders []string
	image := ""
	for name, s := range cf.Services {
		if s.Build != nil {
			builders = append(builders, name)
			image = s.Image
			for _, arg := range []string{"VERSION", "REVISION"} {
				if _, ok := s.Build.Args[arg]; !ok {
					t.Errorf("service %s builds without the build arg %s", name, arg)
				}
			}
		}
	}
	if len(builders) != 1 || image == "" {
		t.Fatalf("services with build: %v (image %q); want exactly one, with an image name", builders, image)
	}
	users := 0
	for name, s := range cf.Services {
		if s.Image == image && s.Build == nil {
			users++
			if s.PullPolicy != "never" {
				t.Errorf("service %s uses the built image %s with pull_policy %q, want never", name, image, s.PullPolicy)
			}
		}
	}
	if users < 2 {
		t.Errorf("%d other services use the built image %s, want the simulator and the job", users, image)
	}
	sim, job := cf.Services["simulator"], cf.Services["job"]
	if sim.Image != image || job.Image != image {
		t.Errorf("simulator (%s) and job (%s) do not use the built image %s", sim.Image, job.Image, image)
	}
	if sim.Healthcheck == nil || len(sim.Healthcheck.Test) < 3 || !slices.Equal(sim.Healthcheck.Test[:3], []string{"CMD", "/reconcile", "healthcheck"}) {
		t.Fatalf("simulator healthcheck %+v, want [CMD /reconcile healthcheck ...]", sim.Healthcheck)
	}
	if c := job.DependsOn["simulator"].Condition; c != "service_healthy" {
		t.Errorf("job depends on the simulator with condition %q, want service_healthy", c)
	}
	if !slices.Contains(sim.Command, "0.0.0.0:8787") {
		t.Errorf("simulator command %q does not listen on 0.0.0.0:8787", sim.Command)
	}

	// The healthcheck, as compose runs it, against a simulator started as
	// compose starts it (on a free port here).
	probe := sim.Healthcheck.Test[2:]
	url := startSimulator(t)
	args := slices.Clone(probe)
	if last := args[len(args)-1]; last != "http://127.0.0.1:8787"+app.HealthPath {
		t.Fatalf("healthcheck URL %q is not the simulator's health endpoint", last)
	} else {
		args[len(args)-1] = url + strings.TrimPrefix(last, "http://127.0.0.1:8787")
	}
	if code, out := runBinary(t, args...); code != 0 {
		t.Errorf("reconcile %q against a running simulator: exit %d\n%s", args, code, out)
	}
	if code, out := runBinary(t, "healthcheck", url+"/no-such-path"); code != 1 {
		t.Errorf("healthcheck of a path the simulator refuses: exit %d, want 1\n%s", code, out)
	}
	if code, out := runBinary(t, "healthcheck", "--timeout", "1s", "http://127.0.0.1:1/healthz"); code != 1 || !strings.Contains(out, "unhealthy") {
		t.Errorf("healthcheck of a closed port: exit %d, want 1 and \"unhealthy\"\n%s", code, out)
	}
}

// startSimulator starts `reconcile simulate` on a free port and returns its
// URL once it logged that it listens; the simulator is stopped at cleanup.
func startSimulator(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binPath, "simulate", "--listen", "127.0.0.1:0", "--log-format", "json",
		"--access-key-id", "id", "--access-key-secret", "secret0123456789")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line struct{ Msg, Endpoint string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "simulator listening" {
			go func() { // keep the pipe drained
				for sc.Scan() {
				}
			}()
			return line.Endpoint
		}
	}
	t.Fatalf("the simulator exited before listening: %v", sc.Err())
	return ""
}

// runBinary runs the built binary with args and returns its exit code and
// combined output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("reconcile %q: %v", args, err)
		}
	}
	return exitCode(err), string(out)
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// TestDockerfileStampsTheVersion: the Dockerfile builds with -trimpath and
// -s -w, stamps VERSION and REVISION into variables that exist (a build
// with its exact -ldflags prints them), and labels the image with them.
func TestDockerfileStampsTheVersion(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	var build string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "go build") {
			build = line
		}
	}
	for _, want := range []string{"-trimpath", "./cmd/reconcile"} {
		if !strings.Contains(build, want) {
			t.Errorf("the Dockerfile's go build lacks %s: %s", want, build)
		}
	}
	m := regexp.MustCompile(`-ldflags "([^"]*)"`).FindStringSubmatch(build)
	if m == nil {
		t.Fatalf("the Dockerfile's go build has no -ldflags \"...\": %s", build)
	}
	ldflags := m[1]
	for _, want := range []string{"-s", "-w", "${VERSION}", "${REVISION}"} {
		if !slices.Contains(strings.Fields(strings.NewReplacer("=", " ").Replace(ldflags)), want) {
			t.Errorf("-ldflags %q lacks %s", ldflags, want)
		}
	}
	if n := strings.Count(text, "ARG VERSION"); n != 2 {
		t.Errorf("ARG VERSION appears %d times, want 2 (build stage and final stage)", n)
	}
	for _, label := range []string{`org.opencontainers.image.version="${VERSION}"`, `org.opencontainers.image.revision="${REVISION}"`} {
		if !strings.Contains(text, label) {
			t.Errorf("the image is not labelled %s", label)
		}
	}

	// Build as the Dockerfile does, with values for the args, and ask.
	ldflags = strings.NewReplacer("${VERSION}", "v9.8.7-docker", "${REVISION}", "feedc0de").Replace(ldflags)
	bin := filepath.Join(t.TempDir(), "reconcile")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", ldflags, err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "reconcile v9.8.7-docker (revision feedc0de") {
		t.Fatalf("reconcile --version of the stamped build: %v\n%s", err, out)
	}
}

// TestDockerignore: the build context leaves out .git and keeps every file
// the build needs: go.mod, go.sum and the files (embedded ones included) of
// the module's packages that ./cmd/reconcile imports.
func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimPrefix(filepath.Clean(line), "/"))
		}
	}
	ignored := func(rel string) string {
		for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
			for _, pat := range patterns {
				if ok, _ := filepath.Match(pat, p); ok {
					return pat
				}
			}
		}
		return ""
	}
	if ignored(".git") == "" {
		t.Error(".dockerignore keeps .git")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}|{{join .GoFiles ","}}|{{join .EmbedFiles ","}}{{end}}{{end}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	need := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, "|")
		if len(parts) != 3 {
			continue
		}
		dir, err := filepath.Rel(root, parts[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(strings.Split(parts[1], ","), strings.Split(parts[2], ",")...) {
			if f != "" {
				need = append(need, filepath.Join(dir, f))
			}
		}
	}
	if len(need) < 20 {
		t.Fatalf("go list found only %v", need)
	}
	for _, f := range need {
		if pat := ignored(f); pat != "" {
			t.Errorf(".dockerignore pattern %q leaves %s, which the build needs, out of the image", pat, f)
		}
	}
}
