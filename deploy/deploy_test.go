package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
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

// TestManifestsDecodeStrictly: every manifest is valid Kubernetes API
// input, with no unknown field (a typo such as "securityContex" would
// otherwise be dropped silently by the API server's lenient decoding).
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := decode(t)
	if len(jobs(objs)) == 0 {
		t.Fatal("no CronJob or Job in the manifests")
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

// TestJobFailurePolicy: each Job acts on the program's exit codes — a node
// drain is ignored, bad configuration fails the Job at once, an
// infrastructure failure is retried within a backoffLimit that allows it —
// and the job's migrations run with the migration secret, which no other
// container gets.
func TestJobFailurePolicy(t *testing.T) {
	for _, j := range jobs(decode(t)) {
		spec := j.spec
		p := spec.PodFailurePolicy
		if p == nil {
			t.Errorf("%s: no podFailurePolicy", j.name)
			continue
		}
		if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %q; podFailurePolicy needs Never", j.name, spec.Template.Spec.RestartPolicy)
		}
		if spec.BackoffLimit == nil || *spec.BackoffLimit < 1 || *spec.BackoffLimit > 6 {
			t.Errorf("%s: backoffLimit %v, want 1 to 6 (infrastructure failures are retried, not forever)", j.name, spec.BackoffLimit)
		}
		// What the first matching rule does for a container exit code.
		action := func(code int32) batchv1.PodFailurePolicyAction {
			for _, r := range p.Rules {
				if r.OnExitCodes != nil && r.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn &&
					slices.Contains(r.OnExitCodes.Values, code) {
					return r.Action
				}
				if r.OnExitCodes != nil && r.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn &&
					!slices.Contains(r.OnExitCodes.Values, code) {
					return r.Action
				}
			}
			return batchv1.PodFailurePolicyActionCount // the default
		}
		for code, want := range map[int32]batchv1.PodFailurePolicyAction{
			app.ExitNotDone:     batchv1.PodFailurePolicyActionFailJob,
			app.ExitConfig:      batchv1.PodFailurePolicyActionFailJob,
			app.ExitInterrupted: batchv1.PodFailurePolicyActionCount,
			app.ExitUnavailable: batchv1.PodFailurePolicyActionCount,
			70:                  batchv1.PodFailurePolicyActionFailJob, // panic
		} {
			if got := action(code); got != want {
				t.Errorf("%s: exit %d → %s, want %s", j.name, code, got, want)
			}
		}
		first := p.Rules[0]
		if first.Action != batchv1.PodFailurePolicyActionIgnore || len(first.OnPodConditions) != 1 ||
			first.OnPodConditions[0].Type != corev1.DisruptionTarget || first.OnPodConditions[0].Status != corev1.ConditionTrue {
			t.Errorf("%s: the first rule must ignore DisruptionTarget (a drain's SIGTERM exits 4 too): %+v", j.name, first)
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
		ps := spec.Template.Spec
		if strings.Contains(j.name, "reconcile-snapshot-callbacks") {
			got := fmt.Sprint(secrets(ps.InitContainers), secrets(ps.Containers))
			if want := "[migrate=reconcile-db-migrate] [reconcile=reconcile-db]"; got != want {
				t.Errorf("%s: secrets %s, want %s (migrations as the owner, the run as the job's role)", j.name, got, want)
			}
		}
	}
}

// TestManifestsAreEmbedded guards the embed pattern: a manifest added with
// another extension would escape the checks.
func TestManifestsAreEmbedded(t *testing.T) {
	b, err := fs.ReadFile(Manifests, "cronjob.yaml")
	if err != nil || !bytes.Contains(b, []byte("kind: CronJob")) {
		t.Fatalf("cronjob.yaml not embedded: %v", err)
	}
}
