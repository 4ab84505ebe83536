package main

import (
	"strings"

	surgehttp "github.com/surgehq/surge/http"
)

// corsOriginList is --cors-origins as a list, checked: exact origins, no
// wildcard (surgehttp.CheckOrigins).
func (c serveConfig) corsOriginList() ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(c.corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	if err := surgehttp.CheckOrigins(out); err != nil {
		return nil, errUsage{"serve: --cors-origins: " + err.Error()}
	}
	return out, nil
}
