package apply

import (
	"testing"

	"github.com/reconcile/reconcile/internal/model"
)

func TestSummaryTotalsFollowTheOutcomeTable(t *testing.T) {
	t.Parallel()
	s := Summary{Counts: map[model.Outcome]int64{model.OutcomeApplied: 1, model.OutcomeInSync: 2,
		model.OutcomeFailed: 4, model.OutcomeDrifted: 8, model.OutcomeDeleted: 16}}
	if s.Done() != 3 || s.NotDone() != 12 {
		t.Fatalf("Done %d, NotDone %d; want 3 (applied, in_sync), 12 (failed, drifted)", s.Done(), s.NotDone())
	}
}
