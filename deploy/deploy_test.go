package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/reconcile/reconcile/internal/app"
)

// object is one decoded manifest document.
type object struct {
	file string
	kind string
	obj  any
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode reads every document of every manifest strictly: an unknown or
// misspelt field, a wrong type or a duplicate key fails, as would a kind
// this test does not know.
func decode(t *testing.T) []object {
	t.Helper()
	files, err := fs.Glob(Manifests, "*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests (%v)", err)
	}
	var out []object
	for _, f := range files {
		b, err := fs.ReadFile(Manifests, f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "batch/v1 CronJob":
				obj = &batchv1.CronJob{}
			case "batch/v1 Job":
				obj = &batchv1.Job{}
			default:
				t.Fatalf("%s document %d: kind %q %q is not checked by this test", f, i+1, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i+1, tm.Kind, err)
				continue
			}
			out = append(out, object{file: f, kind: tm.Kind, obj: obj})
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// job is a Job spec with where it came from.
type job struct {
	name string
	spec *batchv1.JobSpec
	meta metav1.ObjectMeta // the pod template's
}

func jobs(objs []object) []job {
	var out []job
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *batchv1.CronJob:
			out = append(out, job{o.file + " CronJob " + v.Name, &v.Spec.JobTemplate.Spec, v.Spec.JobTemplate.Spec.Template.ObjectMeta})
		case *batchv1.Job:
			out = append(out, job{o.file + " Job " + v.Name, &v.Spec, v.Spec.Template.ObjectMeta})
		}
	}
	return out
}

// main is the Job's one container (its init containers prepare for it).
func (j job) main() *corev1.Container {
	if cs := j.spec.Template.Spec.Containers; len(cs) == 1 {
		return &cs[0]
	}
	return nil
}

// command is the reconcile command the Job runs ("run", "history", …).
func (j job) command() string {
	if c := j.main(); c != nil && len(c.Args) > 0 {
		return c.Args[0]
	}
	return ""
}

// indexed: an Indexed Job, whose pods each get a completion index.
func (j job) indexed() bool {
	return j.spec.CompletionMode != nil && *j.spec.CompletionMode == batchv1.IndexedCompletion
}

// copyJob is a deep copy of j, for the checks' own tests to break.
func copyJob(j job) job {
	j.spec = j.spec.DeepCopy()
	return j
}

// jobNamed is the Job whose name ends with suffix.
func jobNamed(t *testing.T, suffix string) job {
	t.Helper()
	for _, j := range jobs(decode(t)) {
		if strings.HasSuffix(j.name, suffix) {
			return j
		}
	}
	t.Fatalf("no Job %q in the manifests", suffix)
	return job{}
}

// TestManifestsDecodeStrictly: every manifest is valid Kubernetes API
// input, with no unknown field (a typo such as "securityContex" would
// otherwise be dropped silently by the API server's lenient decoding).
// An object that two manifests both define (the ServiceAccount) is the
// same in both, so that applying one after the other changes nothing.
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := decode(t)
	if len(jobs(objs)) == 0 {
		t.Fatal("no CronJob or Job in the manifests")
	}
	seen := map[string]object{}
	for _, o := range objs {
		m := reflect.ValueOf(o.obj).Elem().FieldByName("ObjectMeta").Interface().(metav1.ObjectMeta)
		key := o.kind + " " + m.Namespace + "/" + m.Name
		if first, ok := seen[key]; ok && !reflect.DeepEqual(first.obj, o.obj) {
			t.Errorf("%s is defined differently in %s and %s", key, first.file, o.file)
		}
		seen[key] = o
	}
	// The check itself must catch a typo.
	bad := "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec:\n  schedule: '* * * * *'\n  concurencyPolicy: Forbid\n"
	if err := yaml.UnmarshalStrict([]byte(bad), &batchv1.CronJob{}); err == nil {
		t.Fatal("strict decoding accepted an unknown field")
	}
}

// TestPodSecurityRestricted: every pod template passes Kubernetes' own Pod
// Security evaluator at level restricted, latest version; every container
// (init containers too) also has a read-only root file system and CPU and
// memory requests and limits.
func TestPodSecurityRestricted(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	for _, j := range jobs(decode(t)) {
		spec := &j.spec.Template.Spec
		if res := policy.AggregateCheckResults(eval.EvaluatePod(lv, &j.meta, spec)); !res.Allowed {
			t.Errorf("%s: Pod Security restricted forbids it: %s", j.name, res.ForbiddenDetail())
		}
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s container %s: readOnlyRootFilesystem is not true", j.name, c.Name)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				if req.IsZero() || lim.IsZero() || lim.Cmp(req) < 0 {
					t.Errorf("%s container %s: %s request %s, limit %s; want both, limit ≥ request", j.name, c.Name, r, qty(req), qty(lim))
				}
			}
		}
	}
	// The evaluator itself must refuse what restricted forbids.
	root := corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}
	if policy.AggregateCheckResults(eval.EvaluatePod(lv, &metav1.ObjectMeta{}, &root)).Allowed {
		t.Fatal("the evaluator allowed a pod without any security context")
	}
}

func qty(q resource.Quantity) string {
	if q.IsZero() {
		return "none"
	}
	return q.String()
}

// num prints an optional count of a Job spec.
func num(p *int32) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(int(*p))
}

// TestOneImage: every container of every manifest runs the same image, so
// that an upgrade cannot bump one manifest and forget the other.
func TestOneImage(t *testing.T) {
	images := map[string][]string{}
	for _, j := range jobs(decode(t)) {
		ps := j.spec.Template.Spec
		for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
			images[c.Image] = append(images[c.Image], j.name+" "+c.Name)
		}
	}
	if len(images) != 1 {
		t.Errorf("the manifests run %d images, want one: %v", len(images), images)
	}
}

// exitPanic is cmd/reconcile's exit code after a panic (no constant in
// internal/app).
const exitPanic = 70

// commandExits: the exit codes other than 0 of each command a manifest runs
// (docs/guarantees.md, "Exit codes"); of these, only `run` takes the run
// claims (3) and works many accounts (7).
var commandExits = map[string][]int32{
	"run":     {app.ExitNotDone, app.ExitConfig, app.ExitLocked, app.ExitInterrupted, app.ExitUnavailable, app.ExitAccountsFailed, exitPanic},
	"history": {app.ExitNotDone, app.ExitConfig, app.ExitInterrupted, app.ExitUnavailable, exitPanic},
}

// retried: the exit codes a Job retries (infrastructure, an interruption);
// on every other a retry cannot help, and the Job gives up at once.
var retried = []int32{app.ExitInterrupted, app.ExitUnavailable}

// documentedExitCodes are the codes of the table in docs/guarantees.md.
func documentedExitCodes(t *testing.T) []int32 {
	t.Helper()
	b, err := os.ReadFile("../docs/guarantees.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Exit codes\n")
	if !ok {
		t.Fatal(`docs/guarantees.md has no "## Exit codes" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var out []int32
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(sec, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, int32(n))
	}
	return out
}

// firstAction is what the first matching rule of p does with a container's
// exit code (Count when none matches: the Job's default).
func firstAction(p *batchv1.PodFailurePolicy, code int32) batchv1.PodFailurePolicyAction {
	for _, r := range p.Rules {
		if e := r.OnExitCodes; e != nil &&
			slices.Contains(e.Values, code) == (e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) {
			return r.Action
		}
	}
	return batchv1.PodFailurePolicyActionCount
}

// failurePolicyProblems: what is wrong with j's response to its command's
// exit codes. Giving up is FailJob, or FailIndex in an Indexed Job with
// per-index retries (one shard's failure leaves the others running).
func failurePolicyProblems(j job, documented []int32) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	spec := j.spec
	p := spec.PodFailurePolicy
	if p == nil || len(p.Rules) == 0 {
		return []string{"no podFailurePolicy"}
	}
	if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		bad("restartPolicy %q; podFailurePolicy needs Never", spec.Template.Spec.RestartPolicy)
	}
	giveUp, limit, limitName := batchv1.PodFailurePolicyActionFailJob, spec.BackoffLimit, "backoffLimit"
	if j.indexed() && spec.BackoffLimitPerIndex != nil {
		giveUp, limit, limitName = batchv1.PodFailurePolicyActionFailIndex, spec.BackoffLimitPerIndex, "backoffLimitPerIndex"
	}
	if limit == nil || *limit < 1 || *limit > 6 {
		bad("%s %s, want 1 to 6 (infrastructure failures are retried, not forever)", limitName, num(limit))
	}
	codes, ok := commandExits[j.command()]
	if !ok {
		bad("runs %q, whose exit codes this test does not know", j.command())
	}
	for _, code := range codes {
		want := giveUp
		if slices.Contains(retried, code) {
			want = batchv1.PodFailurePolicyActionCount
		}
		if got := firstAction(p, code); got != want {
			bad("exit %d → %s, want %s", code, got, want)
		}
	}
	for _, r := range p.Rules {
		if r.OnExitCodes == nil {
			continue
		}
		// The API server refuses values out of order, repeated, or 0 with In.
		if v := r.OnExitCodes.Values; !slices.IsSorted(v) || len(slices.Compact(slices.Clone(v))) != len(v) || slices.Contains(v, 0) {
			bad("exit codes %v: want them ordered, each once, and not 0", v)
		}
		for _, code := range r.OnExitCodes.Values {
			if !slices.Contains(documented, code) {
				bad("a rule names exit %d, which docs/guarantees.md does not document", code)
			}
		}
	}
	first := p.Rules[0]
	if first.Action != batchv1.PodFailurePolicyActionIgnore || len(first.OnPodConditions) != 1 ||
		first.OnPodConditions[0].Type != corev1.DisruptionTarget || first.OnPodConditions[0].Status != corev1.ConditionTrue {
		bad("the first rule must ignore DisruptionTarget (a drain's SIGTERM exits 4 too): %+v", first)
	}
	return out
}

// TestJobFailurePolicy: each Job acts on the program's exit codes as
// docs/guarantees.md documents them — a node drain is ignored, an
// infrastructure failure or an interruption is retried within a limit that
// allows it, every other failure gives up at once (the Job, or in an
// Indexed Job the shard) — and the run's migrations run with the migration
// secret, which no other container gets.
func TestJobFailurePolicy(t *testing.T) {
	documented := documentedExitCodes(t)
	known := []int32{app.ExitOK, app.ExitPending} // 5: plan and dry runs, which no Job runs
	for _, codes := range commandExits {
		known = append(known, codes...)
	}
	for _, code := range documented {
		if !slices.Contains(known, code) {
			t.Errorf("docs/guarantees.md documents exit %d, which no command here may end with: what should a Job do with it?", code)
		}
	}
	for _, code := range known {
		if !slices.Contains(documented, code) {
			t.Errorf("exit %d is not in docs/guarantees.md's table", code)
		}
	}
	for _, j := range jobs(decode(t)) {
		for _, p := range failurePolicyProblems(j, documented) {
			t.Errorf("%s: %s", j.name, p)
		}
		if j.command() != "run" {
			continue
		}
		secrets := func(cs []corev1.Container) []string {
			var out []string
			for _, c := range cs {
				for _, e := range c.EnvFrom {
					if e.SecretRef != nil {
						out = append(out, c.Name+"="+e.SecretRef.Name)
					}
				}
			}
			return out
		}
		ps := j.spec.Template.Spec
		got := fmt.Sprint(secrets(ps.InitContainers), secrets(ps.Containers))
		if want := "[migrate=reconcile-db-migrate] [reconcile=reconcile-db]"; got != want {
			t.Errorf("%s: secrets %s, want %s (migrations as the owner, the run as the job's role)", j.name, got, want)
		}
	}

	// The check itself must catch a shard that fails the whole Job, and a
	// new exit code left to the default (Count: retried).
	sharded := jobNamed(t, "reconcile-snapshot-callbacks-sharded")
	for name, breakIt := range map[string]func(p *batchv1.PodFailurePolicy){
		"FailJob in an Indexed Job": func(p *batchv1.PodFailurePolicy) { p.Rules[1].Action = batchv1.PodFailurePolicyActionFailJob },
		"exit 7 left out":           func(p *batchv1.PodFailurePolicy) { p.Rules[1].OnExitCodes.Values = []int32{1, 2, 3, 70} },
	} {
		j := copyJob(sharded)
		breakIt(j.spec.PodFailurePolicy)
		if len(failurePolicyProblems(j, documented)) == 0 {
			t.Errorf("the check accepted %s", name)
		}
	}
}

// TestCronJobs: a schedule never starts a Job while the previous one runs
// (the claims in Postgres are the second guard), and each CronJob's name
// leaves room for the suffix of its Jobs' names (the API server refuses a
// name over 52 characters).
func TestCronJobs(t *testing.T) {
	for _, o := range decode(t) {
		c, ok := o.obj.(*batchv1.CronJob)
		if !ok {
			continue
		}
		if c.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			t.Errorf("%s CronJob %s: concurrencyPolicy %q, want Forbid", o.file, c.Name, c.Spec.ConcurrencyPolicy)
		}
		if len(c.Name) > 52 {
			t.Errorf("%s CronJob %s: name over 52 characters", o.file, c.Name)
		}
	}
}

// completionIndex is the variable the Job controller sets, in an Indexed
// Job, to the pod's completion index (from the pod's annotation
// batch.kubernetes.io/job-completion-index).
const completionIndex = "JOB_COMPLETION_INDEX"

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// refs are the $(NAME) references of s, without the escaped $$(NAME).
func refs(s string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(strings.ReplaceAll(s, "$$", ""), -1) {
		out = append(out, m[1])
	}
	return out
}

// referenceProblems: every $(NAME) of a container resolves, as the kubelet
// expands them. Command and args see the whole environment, including
// JOB_COMPLETION_INDEX, which the Job controller appends to every container
// of an Indexed Job; an env value sees only the variables declared before
// it, so it sees JOB_COMPLETION_INDEX only when the container declares it
// earlier. An unresolved reference is passed on as it is.
func referenceProblems(j job) []string {
	var out []string
	ps := j.spec.Template.Spec
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		var declared []string
		for _, e := range c.Env {
			for _, r := range refs(e.Value) {
				if !slices.Contains(declared, r) {
					out = append(out, fmt.Sprintf("container %s: %s refers to $(%s), not declared before it", c.Name, e.Name, r))
				}
			}
			if e.Name == completionIndex {
				f := e.ValueFrom
				if want := "metadata.annotations['batch.kubernetes.io/job-completion-index']"; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != want {
					out = append(out, fmt.Sprintf("container %s: %s must come from %s", c.Name, completionIndex, want))
				}
			}
			declared = append(declared, e.Name)
		}
		if j.indexed() {
			declared = append(declared, completionIndex)
		}
		for _, s := range slices.Concat(c.Command, c.Args) {
			for _, r := range refs(s) {
				if !slices.Contains(declared, r) {
					out = append(out, fmt.Sprintf("container %s: %q refers to $(%s), which it does not have", c.Name, s, r))
				}
			}
		}
	}
	return out
}

// shardProblems: an Indexed Job's pods each run one shard of the accounts,
// `--shard=$(JOB_COMPLETION_INDEX)/N` (or RECONCILE_SHARD), with N the
// number of indexes, all running at once.
func shardProblems(j job) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	c := j.main()
	if c == nil || j.command() != "run" {
		return []string{"an Indexed Job must run one container, `reconcile run`"}
	}
	var shards []string
	for i, a := range c.Args {
		switch {
		case strings.HasPrefix(a, "--shard=") || strings.HasPrefix(a, "-shard="):
			_, v, _ := strings.Cut(a, "=")
			shards = append(shards, v)
		case (a == "--shard" || a == "-shard") && i+1 < len(c.Args):
			shards = append(shards, c.Args[i+1])
		}
	}
	for _, e := range c.Env {
		if e.Name == "RECONCILE_SHARD" {
			shards = append(shards, e.Value)
		}
	}
	if len(shards) != 1 {
		return []string{fmt.Sprintf("%d shard settings (--shard, RECONCILE_SHARD), want one", len(shards))}
	}
	m := regexp.MustCompile(`^\$\(` + completionIndex + `\)/(\d+)$`).FindStringSubmatch(shards[0])
	if m == nil {
		return []string{fmt.Sprintf("shard %q, want $(%s)/N: each pod its own shard", shards[0], completionIndex)}
	}
	n, _ := strconv.Atoi(m[1])
	if cp, pp := j.spec.Completions, j.spec.Parallelism; cp == nil || pp == nil || int(*cp) != n || int(*pp) != n {
		bad("completions %s and parallelism %s, want both %d, the shard count of %q", num(cp), num(pp), n, shards[0])
	}
	if n < 2 {
		bad("%d shard: use the CronJob of cronjob.yaml", n)
	}
	return out
}

// TestIndexedJobShards: the sharded CronJob's Job is Indexed, runs as
// many pods at once as there are shards, and gives each pod the shard of
// its completion index; every $(NAME) in every container resolves.
func TestIndexedJobShards(t *testing.T) {
	found := 0
	for _, j := range jobs(decode(t)) {
		for _, p := range referenceProblems(j) {
			t.Errorf("%s: %s", j.name, p)
		}
		if !j.indexed() {
			if c := j.main(); c != nil && slices.ContainsFunc(c.Args, func(a string) bool { return strings.Contains(a, completionIndex) }) {
				t.Errorf("%s: not an Indexed Job, but its args use %s", j.name, completionIndex)
			}
			continue
		}
		found++
		for _, p := range shardProblems(j) {
			t.Errorf("%s: %s", j.name, p)
		}
	}
	if found == 0 {
		t.Fatal("no Indexed Job in the manifests")
	}

	// The checks themselves must catch a wrong count, a fixed shard, and an
	// env value that refers to the index the controller appends after it.
	sharded := jobNamed(t, "reconcile-snapshot-callbacks-sharded")
	for name, c := range map[string]struct {
		check   func(job) []string
		breakIt func(*batchv1.JobSpec)
	}{
		"completions 3 for /4": {shardProblems, func(s *batchv1.JobSpec) { *s.Completions = 3 }},
		"parallelism 2 for /4": {shardProblems, func(s *batchv1.JobSpec) { *s.Parallelism = 2 }},
		"a fixed shard":        {shardProblems, func(s *batchv1.JobSpec) { s.Template.Spec.Containers[0].Args[1] = "--shard=0/4" }},
		"RECONCILE_SHARD before the index": {referenceProblems, func(s *batchv1.JobSpec) {
			c := &s.Template.Spec.Containers[0]
			c.Args = c.Args[:1]
			c.Env = slices.Insert(slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == completionIndex }),
				0, corev1.EnvVar{Name: "RECONCILE_SHARD", Value: "$(" + completionIndex + ")/4"})
		}},
		"a misspelt index": {referenceProblems, func(s *batchv1.JobSpec) {
			s.Template.Spec.Containers[0].Args[1] = "--shard=$(JOB_COMPLETION_IDX)/4"
		}},
	} {
		j := copyJob(sharded)
		c.breakIt(j.spec)
		if len(c.check(j)) == 0 {
			t.Errorf("the check accepted %s", name)
		}
	}
}

// TestManifestsAreEmbedded guards the embed pattern: a manifest added with
// another extension would escape the checks.
func TestManifestsAreEmbedded(t *testing.T) {
	for name, kind := range map[string]string{"cronjob.yaml": "kind: CronJob", "indexed-job.yaml": "completionMode: Indexed"} {
		b, err := fs.ReadFile(Manifests, name)
		if err != nil || !bytes.Contains(b, []byte(kind)) {
			t.Errorf("%s not embedded: %v", name, err)
		}
	}
}
