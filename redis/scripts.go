package redis

import (
	"context"
	_ "embed"
	"errors"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed reserve.lua
var reserveSrc string

//go:embed release.lua
var releaseSrc string

//go:embed install.lua
var installSrc string

//go:embed take.lua
var takeSrc string

//go:embed give.lua
var giveSrc string

//go:embed inspect.lua
var inspectSrc string

var (
	reserveScript = goredis.NewScript(reserveSrc)
	releaseScript = goredis.NewScript(releaseSrc)
	installScript = goredis.NewScript(installSrc)
	takeScript    = goredis.NewScript(takeSrc)
	giveScript    = goredis.NewScript(giveSrc)
	inspectScript = goredis.NewScript(inspectSrc)
)

// evalMany is the package's one script runner: it runs sc once per
// element of keys (with args[i]) in one pipelined round trip (the calls may
// be on different slots and shards), and extra, when set, queues read-only
// commands in the same round trip. A call the server refused because it
// had forgotten the script (a restarted Redis: NOSCRIPT) is loaded and run
// again; a call that failed otherwise is not, since it may have run, and
// neither are extra's commands. The first error other than goredis.Nil is
// returned with every command.
func evalMany(ctx context.Context, c Client, sc *goredis.Script, keys [][]string, args [][]any, extra func(goredis.Pipeliner)) ([]*goredis.Cmd, error) {
	if len(keys) == 1 && extra == nil {
		cmd := sc.Run(ctx, c, keys[0], args[0]...) // EVALSHA, EVAL on NOSCRIPT
		return []*goredis.Cmd{cmd}, cmd.Err()
	}
	cmds := make([]*goredis.Cmd, len(keys))
	send := func(which []int, extra func(goredis.Pipeliner)) {
		_, _ = c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, i := range which {
				cmds[i] = sc.EvalSha(ctx, p, keys[i], args[i]...)
			}
			if extra != nil {
				extra(p)
			}
			return nil
		})
	}
	all := make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	send(all, extra)
	var again []int
	for i, cmd := range cmds {
		if cmd.Err() != nil && isNoScript(cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		if err := sc.Load(ctx, c).Err(); err != nil {
			return nil, err
		}
		send(again, nil)
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return cmds, err
		}
	}
	return cmds, nil
}

func isNoScript(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}
