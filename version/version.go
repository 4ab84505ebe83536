// Package version says which build of Surge runs: its version, the commit
// it was built from and the Go toolchain. `surge version`, the
// surge_build_info metric, the logs and the traces all read it here, so
// they never disagree.
//
// `make build` stamps the version and commit with the linker:
//
//	go build -ldflags "-X github.com/surgehq/surge/version.version=v1.2.0 \
//	  -X github.com/surgehq/surge/version.commit=$(git rev-parse HEAD)" ./cmd/surge
//
// A binary built without the stamps (`go install …@v1.2.0`, `go build` in a
// checkout) takes them from the build information the Go toolchain
// records: the module version, and the vcs.revision of a checkout.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set only by the linker (-X); never written by the program.
var (
	version string
	commit  string
)

// Info is one build's identity.
type Info struct {
	Version   string // "v1.2.0", or "(devel)" when nothing recorded one
	Commit    string // full VCS revision, "" when unknown
	Modified  bool   // built from a checkout with uncommitted changes
	GoVersion string // the toolchain that compiled the binary
}

// Get returns the running binary's build identity.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
}

// resolve prefers the linker's stamps and falls back to the build info
// (nil when the binary has none).
func resolve(stampVersion, stampCommit string, bi *debug.BuildInfo) Info {
	i := Info{Version: stampVersion, Commit: stampCommit, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		if i.Version == "" && bi.Main.Version != "" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.modified":
				// Only meaningful for the revision the build info gave.
				if stampCommit == "" {
					i.Modified = s.Value == "true"
				}
			}
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	return i
}

// String is the one line `surge version` prints, e.g.
// "v1.2.0 (commit 0123abcd…, go1.26.8)".
func (i Info) String() string {
	c := i.Commit
	if c == "" {
		c = "unknown"
	}
	if i.Modified {
		c += "+dirty"
	}
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, c, i.GoVersion)
}
