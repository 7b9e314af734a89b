package livesim

// DomainFault injects one of the fault kinds of Faults into the requests of
// one domain (Options.DomainFaults), deterministically, in place of the
// seeded random draw: "lose the answer to the next Update of a.example.com"
// rather than "lose 5% of the answers". It applies to requests that passed
// the signature, ForceErrors and throttling checks (a throttled request does
// not use up Times), like the random faults.
type DomainFault struct {
	// Fault is FaultServerError, FaultReset, FaultHang or FaultLostAnswer.
	// Other values match nothing.
	Fault string
	// Action limits the rule to one Action (e.g. ActionUpdate); "" = any.
	Action string
	// Times is how many matching requests get the fault; 0 = every one.
	Times int
}

// domainFaultKind returns the fault kind of the first rule of the
// account's DomainFaults[domain] that matches action and has uses left,
// and uses it up. Called with s.mu held.
func (s *Server) domainFaultKind(a *account, domain, action string) (faultKind, bool) {
	rules := a.domainFaults[domain]
	if domain == "" || len(rules) == 0 {
		return kindNone, false
	}
	for i, r := range rules {
		if r.Action != "" && r.Action != action {
			continue
		}
		var k faultKind
		switch r.Fault {
		case FaultServerError:
			k = kindServerError
		case FaultReset:
			k = kindReset
		case FaultHang:
			k = kindHang
		case FaultLostAnswer:
			k = kindLost
		default:
			continue
		}
		if a.domainFaultUsed == nil {
			a.domainFaultUsed = map[string][]int{}
		}
		used := a.domainFaultUsed[domain]
		if used == nil {
			used = make([]int, len(rules))
			a.domainFaultUsed[domain] = used
		}
		if r.Times > 0 && used[i] >= r.Times {
			continue
		}
		used[i]++
		return k, true
	}
	return kindNone, false
}
