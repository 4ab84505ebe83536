package client

import "time"

// SetStreamSilence shortens how long WatchQueue and Orders wait on a silent stream,
// so a test of a dead connection takes seconds, not the 35 s default.
func SetStreamSilence(c *Client, d time.Duration) { c.silentAfter = d }
