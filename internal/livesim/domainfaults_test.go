package livesim

import (
	"context"
	"testing"
)

func updQ(domain string) map[string]string {
	return map[string]string{"DomainName": domain, "NotifyUrl": "https://cb.example.com/other", "RegionId": "cn-shanghai"}
}

// TestDomainFaults: a rule hits only its domain and Action, as many times as
// it says, and a lost answer still applies the operation.
func TestDomainFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Seed: 1, DomainFaults: map[string][]DomainFault{
		"x.example.com": {
			{Fault: FaultLostAnswer, Action: ActionUpdate, Times: 1},
			{Fault: FaultServerError, Action: ActionDelete},
		},
	}})
	c := e.client(t, clientOpt{})
	ctx := context.Background()
	want := func(i int, err error, kind string) {
		t.Helper()
		if got := classify(err); got.kind != kind {
			t.Fatalf("call %d: %+v, want %s", i, got, kind)
		}
	}
	_, err := call(ctx, c, ActionAdd, addQ("x.example.com")) // no rule for Add
	want(0, err, "ok")
	_, err = call(ctx, c, ActionUpdate, updQ("y.example.com")) // other domain
	want(1, err, "client")                                     // ConfigNotFound: y has no config
	_, err = call(ctx, c, ActionUpdate, updQ("x.example.com"))
	want(2, err, "transport") // lost, but applied
	_, err = call(ctx, c, ActionUpdate, updQ("x.example.com"))
	want(3, err, "ok") // Times: 1 used up
	for i := 4; i < 7; i++ {
		_, err = call(ctx, c, ActionDelete, map[string]string{"DomainName": "x.example.com", "RegionId": "cn-shanghai"})
		want(i, err, "server") // Times 0: every Delete
	}
	e.stop()
	log := e.sim.Log()
	if en := log[2]; en.Fault != FaultLostAnswer || !en.Applied || en.Status != 0 {
		t.Fatalf("lost Update entry %+v", en)
	}
	if cfg, ok := e.sim.Config("x.example.com"); !ok || cfg.NotifyURL != "https://cb.example.com/other" {
		t.Fatalf("config %v %v: the lost Update was not applied, or a failed Delete was", cfg, ok)
	}
	if st := e.sim.Stats(); st.ByFault[FaultServerError] != 3 || st.ByFault[FaultLostAnswer] != 1 {
		t.Fatalf("stats %+v", st)
	}
}
