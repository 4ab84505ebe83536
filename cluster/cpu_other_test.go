//go:build !unix

package cluster_test

import (
	"testing"
	"time"
)

// cpuTime is 0 where getrusage is missing: cpu-µs/purchase then reads 0.
func cpuTime(*testing.B) time.Duration { return 0 }
