package deploy_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestHelmNotesWarnOfPerPodTicketKeys: without a waiting-room secret each
// pod signs tickets with a key of its own, so in cluster mode a buyer the
// line admitted on one pod is refused on the next (403 invalid_ticket),
// and the only sign was a warning in one pod's log once such a sale
// appeared. A cluster install without secrets.waitingRoomSecret (nor an
// existing Secret, nor the variable in env) must say so in its notes; one
// with it, and embedded mode (one process), must not.
func TestHelmNotesWarnOfPerPodTicketKeys(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())
	chart := filepath.Join("helm", "surge")
	const warning = "No secrets.waitingRoomSecret"
	for _, tc := range []struct {
		mode string
		args []string
		warn bool
	}{
		{"cluster", []string{"--set", "secrets.waitingRoomSecret="}, true},
		{"cluster", nil, false}, // the ci values set one
		{"cluster", []string{"--set", "secrets.waitingRoomSecret=", "--set", "secrets.existingSecret=shop", "--set", "postgresConnections.poolMaxConns=7"}, false},
		{"cluster", []string{"--set", "secrets.waitingRoomSecret=", "--set", "env.SURGE_WAITING_ROOM_SECRET_FILE=/etc/room/key"}, false},
		{"embedded", nil, false},
	} {
		args := append([]string{"install", "drop", chart, "-f", filepath.Join(chart, "ci", tc.mode+"-values.yaml"), "--dry-run=client"}, tc.args...)
		out := runTool(t, helm, args...)
		if got := strings.Contains(out, warning); got != tc.warn {
			t.Errorf("%s, helm install %v: the notes warn of no waiting-room secret: %v, want %v:\n%s", tc.mode, tc.args, got, tc.warn, out)
		}
	}
}
