package deploy_test

import (
	"testing"
	"time"
)

// TestHelmReadinessToleratesOneSlowAnswer: /readyz answers from memory
// (draining, and the store's health as a background check made every
// second found it), so a probe fails only when the node is too busy to
// answer within the timeout or one store check was slower than its 1 s.
// Both happen in a spike's worst second, and with failureThreshold 1 that
// single miss took the pod out of the Service, moving its buyers onto the
// other pods, which then miss theirs (a cascade; a slow Redis check takes
// every pod out at once). A pod must stay in for one miss, and still be
// out within the drain delay once it drains (failures × period + timeout),
// for a load balancer that follows readiness.
func TestHelmReadinessToleratesOneSlowAnswer(t *testing.T) {
	for _, mode := range []string{"embedded", "cluster"} {
		c := renderContainer(t, mode)
		p := c.ReadinessProbe
		if p.FailureThreshold < 2 {
			t.Errorf("%s: readinessProbe failureThreshold %d (timeout %d s): a single slow /readyz in a spike takes the pod out of the Service",
				mode, p.FailureThreshold, p.TimeoutSeconds)
		}
		var drainDelay time.Duration
		for _, e := range c.Env {
			if e.Name == "SURGE_DRAIN_DELAY" {
				drainDelay, _ = time.ParseDuration(e.Value)
			}
		}
		out := time.Duration(p.FailureThreshold*p.PeriodSeconds+p.TimeoutSeconds) * time.Second
		if p.PeriodSeconds < 1 || out > drainDelay {
			t.Errorf("%s: readinessProbe period %d s × %d failures + %d s timeout = %v to take a draining pod out, want at most the drain delay, %v",
				mode, p.PeriodSeconds, p.FailureThreshold, p.TimeoutSeconds, out, drainDelay)
		}
	}
}
