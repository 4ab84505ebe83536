package engine

import "testing"

// TestInboxSizeBounded: an InboxSize beyond MaxInboxSize, from a config
// built in code, made each sale's inbox that large, allocated when the
// sale is created: 1<<40 ended the process ("fatal error: runtime: out of
// memory"), a smaller slip took gigabytes per sale. It is now capped.
func TestInboxSizeBounded(t *testing.T) {
	cfg := testConfig(fixedClock())
	cfg.InboxSize = 1 << 40
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("big", 10, 1))
	if got := cap(e.lookup("big").inbox); got != MaxInboxSize {
		t.Errorf("the sale's inbox holds %d purchases; want MaxInboxSize (%d)", got, MaxInboxSize)
	}
}
