package modeltest

// The model's vocabulary (value sets, steps, run specifications) and the
// seeded generator of step sequences.

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/reconcile/reconcile/internal/livesim"
)

// vals is one set of desired values of a row. Empty Key and Region are NULL.
type vals struct {
	URL    string
	Auth   bool
	Key    string
	Region string
}

// valid mirrors the job's validation for the values the generator makes:
// an https URL, and a key whenever auth is on (keys it makes are well
// formed).
func (v vals) valid() bool {
	return strings.HasPrefix(v.URL, "https://") && (!v.Auth || v.Key != "")
}

func (v vals) String() string {
	s := v.URL
	if v.Auth {
		s += " auth"
	}
	if v.Key != "" {
		s += " key=…" + v.Key[max(0, len(v.Key)-5):]
	}
	if v.Region != "" {
		s += " region=" + v.Region
	}
	if !v.valid() {
		s += " (INVALID)"
	}
	return s
}

type stepKind int

const (
	stInsert stepKind = iota
	stEdit
	stDelete
	stRun
)

// step is one step of a sequence.
type step struct {
	kind   stepKind
	domain string
	vals   vals   // stInsert, stEdit
	note   string // what the step is for (revert, macro name…)
	run    runSpec
}

func (s step) String() string {
	var b string
	switch s.kind {
	case stInsert:
		b = fmt.Sprintf("insert %s [%v]", s.domain, s.vals)
	case stEdit:
		b = fmt.Sprintf("edit %s → [%v]", s.domain, s.vals)
	case stDelete:
		b = "delete " + s.domain
	case stRun:
		b = "run " + s.run.String()
	}
	if s.note != "" {
		b += "  (" + s.note + ")"
	}
	return b
}

// killPhase says where, relative to the triggering request, the subprocess
// is SIGKILLed.
type killPhase int

const (
	killBeforeSim   killPhase = iota // the request never reaches the simulator
	killAfterApply                   // the simulator executed it; the answer is never sent
	killAfterAnswer                  // the answer was written and flushed
)

func (p killPhase) String() string {
	return [...]string{"before the simulator", "after apply, before the answer", "after the answer"}[p]
}

// killSpec: run the job as a subprocess and SIGKILL it at the at-th API
// request, or (domain set) at the first request for domain (and action).
type killSpec struct {
	at     int
	domain string
	action string
	phase  killPhase
}

// runSpec is one run of the job and the simulator it talks to.
type runSpec struct {
	profile string
	faults  livesim.Faults
	limit   int // simulator throttling (0: none)
	force   map[string]livesim.ForcedError
	// forbidPending: the simulator answers 403 Forbidden.RAM to every
	// request for one of the rows pending when the run starts (chosen by
	// simSeed), as for a domain outside the RAM policy's resources.
	forbidPending bool
	domainFaults  map[string][]livesim.DomainFault
	latency       livesim.Latency
	simSeed       int64

	rate        int
	maxAttempts int
	timeout     time.Duration
	concurrency int
	prune       bool
	verify      bool
	kill        *killSpec
}

func (r runSpec) String() string {
	s := fmt.Sprintf("[%s] --rate %d --max-attempts %d --concurrency %d --request-timeout %v", r.profile, r.rate,
		r.maxAttempts, r.concurrency, r.timeout)
	if r.prune {
		s += " --prune"
	}
	if r.verify {
		s += " --verify-existing"
	}
	f := r.faults
	if f != (livesim.Faults{}) {
		s += fmt.Sprintf(" faults{5xx %.2f reset %.2f hang %.2f lost %.2f}", f.ServerError, f.Reset, f.Hang, f.LostAnswer)
	}
	if r.limit > 0 {
		s += fmt.Sprintf(" sim-limit %d/s", r.limit)
	}
	if r.forbidPending {
		s += " force{one pending domain: 403 Forbidden.RAM}"
	}
	for _, d := range slices.Sorted(maps.Keys(r.force)) {
		s += fmt.Sprintf(" force{%s: %d %s}", d, r.force[d].Status, r.force[d].Code)
	}
	for _, d := range slices.Sorted(maps.Keys(r.domainFaults)) {
		for _, df := range r.domainFaults[d] {
			a := df.Action
			if a == "" {
				a = "any"
			}
			s += fmt.Sprintf(" domain-fault{%s %s %s ×%d}", d, strings.TrimSuffix(a, "LiveSnapshotNotifyConfig"), df.Fault, df.Times)
		}
	}
	if k := r.kill; k != nil {
		if k.domain != "" {
			s += fmt.Sprintf(" SIGKILL at the first %s of %s, %v", strings.TrimSuffix(k.action, "LiveSnapshotNotifyConfig"), k.domain, k.phase)
		} else {
			s += fmt.Sprintf(" SIGKILL at request %d, %v", k.at, k.phase)
		}
	}
	return s
}

// cleanRun is a fault-free run with generous attempts.
func cleanRun(seed int64) runSpec {
	return runSpec{profile: "clean", rate: 50, maxAttempts: 5, concurrency: 4, timeout: 2 * time.Second, simSeed: seed}
}

// sequence is what the generator makes: the initial rows, the configs that
// exist in the cloud before the first run, and the steps.
type sequence struct {
	seed     int64
	initial  map[string]vals
	preExist map[string]vals // cloud configs before the first run (equal to the initial values)
	steps    []step
	final    runSpec // the flags of the clean runs after the faults stop
}

// gen generates a sequence. It keeps its own copy of the desired table
// (the desired rows are changed only by steps, so it is exact); it knows
// nothing of outcomes or of the cloud, so the sequence depends on the seed
// only.
type gen struct {
	r        *rand.Rand
	seed     int64
	domains  []string
	desired  map[string]vals
	history  map[string][]vals // every value set a domain had, oldest first
	ver      map[string]int
	inserted map[string]bool // ever inserted
	static   map[string]bool // pre-existing in the cloud: never edited nor deleted
	steps    []step
	runs     int
}

// genSize bounds a sequence.
type genSize struct {
	minDomains, maxDomains int
	minUnits, maxUnits     int // random steps or macros
}

var (
	sizeCI   = genSize{minDomains: 8, maxDomains: 12, minUnits: 14, maxUnits: 20}
	sizeLong = genSize{minDomains: 10, maxDomains: 20, minUnits: 25, maxUnits: 45}
)

func generate(seed int64, size genSize) sequence {
	g := &gen{r: rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x6d6f64656c)), seed: seed,
		desired: map[string]vals{}, history: map[string][]vals{}, ver: map[string]int{},
		inserted: map[string]bool{}, static: map[string]bool{}}
	n := size.minDomains + g.r.IntN(size.maxDomains-size.minDomains+1)
	for i := range n {
		g.domains = append(g.domains, fmt.Sprintf("m%02d.model.example.com", i))
	}
	seq := sequence{seed: seed, initial: map[string]vals{}, preExist: map[string]vals{}}
	// About 70% of the domains are desired from the start; the rest are
	// kept for inserts (fresh domains make the lost-Add patterns possible).
	for _, d := range g.domains {
		if g.r.IntN(10) < 7 {
			v := g.newVals(d, nil, false)
			g.setDesired(d, v)
			seq.initial[d] = v
		}
	}
	// One or two of them already have their config in the cloud.
	for _, d := range g.desiredDomains() {
		if len(seq.preExist) < 2 && g.r.IntN(6) == 0 {
			seq.preExist[d], g.static[d] = g.desired[d], true
		}
	}
	units := size.minUnits + g.r.IntN(size.maxUnits-size.minUnits+1)
	g.addRun(g.randomRun()) // the first step is a run
	for range units {
		switch u := g.r.IntN(100); {
		case u < 32:
			g.addRun(g.randomRun())
		case u < 54:
			g.randomEdit()
		case u < 64:
			g.randomRevert()
		case u < 72:
			g.randomInsert()
		case u < 79:
			g.randomDelete()
		default:
			g.macro()
		}
	}
	seq.steps = g.steps
	seq.final = cleanRun(g.nextSimSeed())
	seq.final.prune = g.r.IntN(2) == 0
	seq.final.verify = g.r.IntN(4) == 0
	return seq
}

func (g *gen) nextSimSeed() int64 { g.runs++; return g.seed*1000 + int64(g.runs) }

func (g *gen) desiredDomains() []string {
	return slices.Sorted(maps.Keys(g.desired))
}

func (g *gen) setDesired(d string, v vals) {
	g.desired[d] = v
	g.inserted[d] = true
	g.history[d] = append(g.history[d], v)
}

func (g *gen) pick(ds []string) string { return ds[g.r.IntN(len(ds))] }

// newVals returns a value set never used before for d: a fresh URL and,
// for about a third, auth with a fresh key; with allowInvalid, about one in
// 15 is invalid (auth without a key, or a non-https URL). From prev, only
// some fields change.
func (g *gen) newVals(d string, prev *vals, allowInvalid bool) vals {
	g.ver[d]++
	k := g.ver[d]
	idx := strings.TrimSuffix(d, ".model.example.com")
	url := fmt.Sprintf("https://hooks.example.com/%s/v%d", idx, k)
	key := fmt.Sprintf("mKey%sZZZZv%04d", idx, k) // 16 letters and digits
	regions := []string{"", "cn-beijing", "cn-shanghai"}
	var v vals
	if prev == nil {
		v = vals{URL: url, Region: regions[g.r.IntN(3)]}
		if g.r.IntN(3) == 0 {
			v.Auth, v.Key = true, key
		}
	} else {
		v = *prev
		switch g.r.IntN(5) {
		case 0: // the URL
			v.URL = url
		case 1: // auth toggled
			v.Auth = !v.Auth
			if v.Auth {
				v.Key = key
			} else if g.r.IntN(2) == 0 {
				v.Key = ""
			}
		case 2: // key rotated (auth on)
			v.Auth, v.Key = true, key
		case 3: // region
			v.Region = regions[(slices.Index(regions, v.Region)+1+g.r.IntN(2))%3]
		default: // everything
			v = vals{URL: url, Auth: g.r.IntN(2) == 0, Region: regions[g.r.IntN(3)]}
			if v.Auth {
				v.Key = key
			}
		}
		if !prev.valid() && !v.valid() { // make an invalid row valid again
			v.URL, v.Auth, v.Key = url, true, key
		}
	}
	if allowInvalid && g.r.IntN(15) == 0 {
		if g.r.IntN(2) == 0 {
			v.Auth, v.Key = true, ""
		} else {
			v.URL = fmt.Sprintf("ftp://hooks.example.com/%s/v%d", idx, k)
		}
	}
	return v
}

func (g *gen) add(s step) { g.steps = append(g.steps, s) }

func (g *gen) addRun(r runSpec) { g.add(step{kind: stRun, run: r}) }

// editable: desired domains that are not static.
func (g *gen) editable() []string {
	var out []string
	for _, d := range g.desiredDomains() {
		if !g.static[d] {
			out = append(out, d)
		}
	}
	return out
}

func (g *gen) edit(d string, v vals, note string) {
	g.setDesired(d, v)
	g.add(step{kind: stEdit, domain: d, vals: v, note: note})
}

func (g *gen) insert(d string, v vals, note string) {
	g.setDesired(d, v)
	g.add(step{kind: stInsert, domain: d, vals: v, note: note})
}

func (g *gen) del(d, note string) {
	delete(g.desired, d)
	g.add(step{kind: stDelete, domain: d, note: note})
}

// randomEdit edits one to three rows (so that runs have some work).
func (g *gen) randomEdit() {
	ds := g.editable()
	if len(ds) == 0 {
		g.randomInsert()
		return
	}
	g.r.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	for _, d := range ds[:min(len(ds), 1+g.r.IntN(3))] {
		prev := g.desired[d]
		g.edit(d, g.newVals(d, &prev, true), "")
	}
}

// revertTarget returns an earlier value set of d that differs from its
// current one.
func (g *gen) revertTarget(d string) (vals, int, bool) {
	cur := g.desired[d]
	var idx []int
	for i, v := range g.history[d] {
		if v != cur {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return vals{}, 0, false
	}
	i := idx[g.r.IntN(len(idx))]
	return g.history[d][i], i + 1, true
}

func (g *gen) randomRevert() {
	var ds []string
	for _, d := range g.editable() {
		if _, _, ok := g.revertTarget(d); ok {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		g.randomEdit()
		return
	}
	d := g.pick(ds)
	v, k, _ := g.revertTarget(d)
	g.edit(d, v, fmt.Sprintf("revert to value set #%d", k))
}

// notDesired returns the domains not desired now, fresh ones (never
// inserted) first when fresh.
func (g *gen) notDesired(fresh bool) []string {
	var out, never []string
	for _, d := range g.domains {
		if _, ok := g.desired[d]; ok || g.static[d] {
			continue
		}
		out = append(out, d)
		if !g.inserted[d] {
			never = append(never, d)
		}
	}
	if fresh && len(never) > 0 {
		return never
	}
	return out
}

func (g *gen) randomInsert() {
	ds := g.notDesired(false)
	if len(ds) == 0 {
		g.randomEdit()
		return
	}
	d := g.pick(ds)
	if h := g.history[d]; len(h) > 0 && g.r.IntN(2) == 0 {
		v, k := h[len(h)-1], len(h)
		if g.r.IntN(2) == 0 {
			i := g.r.IntN(len(h))
			v, k = h[i], i+1
		}
		g.insert(d, v, fmt.Sprintf("re-insert with value set #%d", k))
		return
	}
	g.insert(d, g.newVals(d, nil, true), "")
}

func (g *gen) randomDelete() {
	ds := g.editable()
	if len(ds) <= 3 {
		g.randomInsert()
		return
	}
	g.del(g.pick(ds), "")
}

// randomRun draws a fault profile and flags.
func (g *gen) randomRun() runSpec {
	r := runSpec{simSeed: g.nextSimSeed(), concurrency: []int{1, 2, 4, 8}[g.r.IntN(4)],
		// Low rates make the rate invariant bite: a run sends only a few
		// requests, and they must fill a 1-second window to be counted.
		rate: []int{3, 5, 10, 20, 30, 50, 50}[g.r.IntN(7)], timeout: 2 * time.Second,
		maxAttempts: []int{1, 1, 2, 2, 2, 3, 5}[g.r.IntN(7)],
		prune:       g.r.IntN(10) < 3, verify: g.r.IntN(5) == 0,
		latency: livesim.Latency{Median: time.Millisecond, P99: 10 * time.Millisecond}}
	p := func(lo, hi float64) float64 { return lo + g.r.Float64()*(hi-lo) }
	switch u := g.r.IntN(100); {
	case u < 14:
		r.profile = "clean"
	case u < 34:
		r.profile = "lost answers"
		r.faults.LostAnswer = p(0.2, 0.5)
	case u < 46:
		r.profile = "5xx"
		r.faults.ServerError = p(0.15, 0.35)
	case u < 55:
		r.profile = "resets"
		r.faults.Reset = p(0.15, 0.3)
	case u < 63:
		r.profile = "hangs"
		r.faults.Hang = p(0.1, 0.25)
		r.timeout = 200 * time.Millisecond
	case u < 72:
		r.profile = "mixed"
		r.faults = livesim.Faults{ServerError: p(0, 0.15), Reset: p(0, 0.1), Hang: p(0, 0.05), LostAnswer: p(0.05, 0.25)}
		r.timeout = 250 * time.Millisecond
	case u < 80:
		r.profile = "forbidden domain"
		r.forbidPending = true
		r.faults.LostAnswer = p(0, 0.2)
	case u < 88:
		r.profile = "throttled"
		r.limit = 1 + g.r.IntN(2) // per Action: a run has few rows to send
		r.rate = []int{10, 20, 40}[g.r.IntN(3)]
	default:
		r.profile = "SIGKILL"
		r.faults.LostAnswer = p(0, 0.2)
		// Runs often have only a few pending rows: aim early, mostly.
		at := 1 + g.r.IntN(3)
		if g.r.IntN(4) == 0 {
			at = 1 + g.r.IntN(10)
		}
		r.kill = &killSpec{at: at, phase: killPhase(g.r.IntN(3))}
	}
	return r
}

// macro appends one of the step patterns that expose the bugs this test was
// written for (see model_test.go).
func (g *gen) macro() {
	switch g.r.IntN(5) {
	case 0, 1:
		g.macroLostAddThenEdit(g.r.IntN(3) == 0)
	case 2:
		g.macroLostUpdateThenRevert()
	default:
		g.macroLostDeleteThenReinsert()
	}
}

// macroLostAddThenEdit: a fresh domain is inserted; its Add is applied but
// every answer is lost (or the job is SIGKILLed right after the Add was
// applied), so it is not done; it is edited; the next run's Add answers
// ConfigAlreadyExists although the cloud holds the earlier values.
func (g *gen) macroLostAddThenEdit(kill bool) {
	ds := g.notDesired(true)
	if len(ds) == 0 {
		g.addRun(g.randomRun())
		return
	}
	d := g.pick(ds)
	v1 := g.newVals(d, nil, false)
	g.insert(d, v1, "macro lost Add then edit")
	r := g.randomRun()
	r.kill, r.forbidPending = nil, false
	if kill {
		r.profile = "SIGKILL"
		r.kill = &killSpec{domain: d, action: livesim.ActionAdd, phase: killAfterApply}
	} else {
		r.profile += " + lost answers of " + d
		r.domainFaults = map[string][]livesim.DomainFault{d: {{Fault: livesim.FaultLostAnswer}}}
	}
	g.addRun(r)
	v2 := g.newVals(d, &v1, false)
	for v2.Auth == v1.Auth && v2.URL == v1.URL && (!v2.Auth || v2.Key == v1.Key) { // a change the cloud can see
		v2 = g.newVals(d, &v1, false)
	}
	g.edit(d, v2, "macro lost Add then edit")
	r = g.randomRun()
	r.verify, r.kill = false, nil
	g.addRun(r)
}

// macroLostUpdateThenRevert: a domain done at v2 is edited to v3; every
// answer to its Update is lost (applied); it is edited back to v2; the
// next run must not take the old done outcome of v2 for the truth.
func (g *gen) macroLostUpdateThenRevert() {
	ds := g.editable()
	if len(ds) == 0 {
		g.randomInsert()
		return
	}
	d := g.pick(ds)
	v2 := g.desired[d]
	if !v2.valid() {
		v2 = g.newVals(d, &v2, false)
		g.edit(d, v2, "macro lost Update then revert")
	}
	g.addRun(cleanRun(g.nextSimSeed()))
	v3 := g.newVals(d, &v2, false)
	for v3.Auth == v2.Auth && v3.URL == v2.URL && (!v3.Auth || v3.Key == v2.Key) {
		v3 = g.newVals(d, &v2, false)
	}
	g.edit(d, v3, "macro lost Update then revert")
	r := g.randomRun()
	r.kill, r.forbidPending = nil, false
	r.profile += " + lost answers of " + d
	r.domainFaults = map[string][]livesim.DomainFault{d: {{Fault: livesim.FaultLostAnswer}}}
	g.addRun(r)
	g.edit(d, v2, "macro lost Update then revert: back to the done values")
	r = g.randomRun()
	r.kill = nil
	g.addRun(r)
}

// macroLostDeleteThenReinsert: a done domain is deleted from the desired
// table; --prune deletes its config but the answer is lost; the row comes
// back, with new values (its Update answers ConfigNotFound, on the last
// allowed attempt) or with the same values (nothing to send: is it done?).
func (g *gen) macroLostDeleteThenReinsert() {
	ds := g.editable()
	if len(ds) <= 3 {
		g.randomInsert()
		return
	}
	d := g.pick(ds)
	v := g.desired[d]
	if !v.valid() {
		v = g.newVals(d, &v, false)
		g.edit(d, v, "macro lost Delete then re-insert")
	}
	g.addRun(cleanRun(g.nextSimSeed()))
	g.del(d, "macro lost Delete then re-insert")
	r := g.randomRun()
	r.kill, r.forbidPending, r.prune = nil, false, true
	r.profile += " + lost Delete of " + d
	r.domainFaults = map[string][]livesim.DomainFault{d: {{Fault: livesim.FaultLostAnswer, Action: livesim.ActionDelete}}}
	g.addRun(r)
	r = g.randomRun()
	r.kill, r.verify = nil, false
	if g.r.IntN(3) > 0 {
		nv := g.newVals(d, &v, false)
		g.insert(d, nv, "macro lost Delete then re-insert: new values")
		if g.r.IntN(3) == 0 {
			// Update answers 5xx, then ConfigNotFound on attempt 2 of 2.
			r.maxAttempts = 2
			r.profile += " + one 5xx for the Update of " + d
			r.domainFaults = map[string][]livesim.DomainFault{d: {{Fault: livesim.FaultServerError, Action: livesim.ActionUpdate, Times: 1}}}
		} else {
			r.maxAttempts = 1
		}
	} else {
		g.insert(d, v, "macro lost Delete then re-insert: the same values")
	}
	g.addRun(r)
}
