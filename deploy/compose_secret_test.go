package deploy_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// composeInterpolate expands s as Compose does a value of the file
// (the Compose Specification, "Interpolation"): $$ is a dollar, $VAR and
// ${VAR} the shell's value, ${VAR:-d} / ${VAR-d} d when unset or empty /
// unset, ${VAR:?e} / ${VAR?e} an error (every compose command stops with
// e) when unset or empty / unset. shell is the environment of `docker
// compose`; a name absent from it is unset.
func composeInterpolate(s string, shell map[string]string) (string, error) {
	re := regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}$]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$`)
	var err error
	out := re.ReplaceAllStringFunc(s, func(m string) string {
		switch m {
		case "$$":
			return "$"
		case "$":
			// Compose refuses a $ that starts no reference ("invalid
			// interpolation format").
			if err == nil {
				err = fmt.Errorf("invalid interpolation format in %q: a $ that starts no variable (write $$ for one)", s)
			}
			return ""
		}
		g := re.FindStringSubmatch(m)
		name, op, arg := g[1], g[2], g[3]
		if name == "" {
			name = g[4]
		}
		v, set := shell[name]
		switch op {
		case ":-":
			if v == "" {
				return arg
			}
		case "-":
			if !set {
				return arg
			}
		case ":?", "?":
			if !set || (op == ":?" && v == "") {
				if err == nil {
					err = fmt.Errorf("required variable %s is missing a value: %s", name, arg)
				}
				return ""
			}
		}
		return v
	})
	return out, err
}

// TestComposeWaitingRoomSecretNotShipped: the nodes of docker-compose.yml
// sign waiting-room tickets with SURGE_WAITING_ROOM_SECRET, one key that
// every node shares. A ticket that carries its admission slot is let
// through on its MAC alone, so whoever holds the key writes tickets that
// skip the line, for any buyer. A default written in the file is that key
// for everyone who can read the repository: `docker compose up` without
// the variable in the shell must stop and say so, as it does without the
// admin token, never start the nodes on the shipped value. Given in the
// shell, the nodes read it.
func TestComposeWaitingRoomSecretNotShipped(t *testing.T) {
	compose := read(t, "docker-compose.yml")
	node := compose[:strings.Index(compose, "\nservices:")] // the x-surge-node anchor every node merges
	m := regexp.MustCompile(`(?m)^    SURGE_WAITING_ROOM_SECRET: (.*)$`).FindStringSubmatch(node)
	if m == nil {
		t.Fatal("docker-compose.yml gives the nodes no SURGE_WAITING_ROOM_SECRET: each would sign tickets with a key of its own, which the other refuses")
	}
	raw := strings.Trim(m[1], `'"`)
	if v, err := composeInterpolate(raw, nil); err == nil {
		// What a node so started takes: the binary's own reading.
		out := composeNodeConfig(t, map[string]string{"SURGE_WAITING_ROOM_SECRET": v})
		t.Errorf("`docker compose up` with no SURGE_WAITING_ROOM_SECRET in the shell starts the nodes with the waiting-room key written in docker-compose.yml (%q; --print-config: %q): "+
			"anyone who read the file signs tickets that skip the waiting room; want compose to refuse to start without it",
			v, configLine(out, "waiting-room-secret"))
	}
	const secret = "0123456789abcdef0123456789abcdef-compose"
	out := composeNodeConfig(t, map[string]string{"SURGE_WAITING_ROOM_SECRET": secret})
	if got := configLine(out, "waiting-room-secret"); got != `waiting-room-secret: "xxxxx" # env` {
		t.Errorf("a compose node given SURGE_WAITING_ROOM_SECRET in the shell: --print-config says %q; want the secret set from the environment", got)
	}
}

// configLine is the line of `surge serve --print-config` for key.
func configLine(out []byte, key string) string {
	for line := range bytes.Lines(out) {
		if bytes.HasPrefix(line, []byte(key+": ")) {
			return strings.TrimSpace(string(line))
		}
	}
	return ""
}
