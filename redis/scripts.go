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

//go:embed unreserve.lua
var unreserveSrc string

//go:embed quiet.lua
var quietSrc string

//go:embed unconfirmed.lua
var unconfirmedSrc string

//go:embed dropstage.lua
var dropStageSrc string

//go:embed ended.lua
var endedSrc string

var (
	reserveScript     = goredis.NewScript(reserveSrc)
	releaseScript     = goredis.NewScript(releaseSrc)
	installScript     = goredis.NewScript(installSrc)
	takeScript        = goredis.NewScript(takeSrc)
	giveScript        = goredis.NewScript(giveSrc)
	inspectScript     = goredis.NewScript(inspectSrc)
	unreserveScript   = goredis.NewScript(unreserveSrc)
	quietScript       = goredis.NewScript(quietSrc)
	unconfirmedScript = goredis.NewScript(unconfirmedSrc)
	dropStageScript   = goredis.NewScript(dropStageSrc)
	endedScript       = goredis.NewScript(endedSrc)
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
		// EVALSHA, and on NOSCRIPT the script loaded and EVALSHA again,
		// as a pipeline's refused calls below. Not EVAL of the source: it
		// came from a map every script had to join, and the rate limit's
		// never did (sent as an empty script, it answered nil).
		cmd := evalSHA(ctx, sc, keys[0], args[0])
		_ = c.Process(ctx, once{cmd})
		if isNoScript(cmd.Err()) {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return []*goredis.Cmd{cmd}, err
			}
			cmd = evalSHA(ctx, sc, keys[0], args[0])
			_ = c.Process(ctx, once{cmd})
		}
		return []*goredis.Cmd{cmd}, cmd.Err()
	}
	cmds := make([]*goredis.Cmd, len(keys))
	send := func(which []int, extra func(goredis.Pipeliner)) {
		_, _ = c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, i := range which {
				cmds[i] = evalSHA(ctx, sc, keys[i], args[i])
				_ = p.Process(ctx, once{cmds[i]})
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
			return cmds, err // the calls that ran still answer
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

// evalSHA is the EVALSHA of sc with keys and args, to send as once.
func evalSHA(ctx context.Context, sc *goredis.Script, keys []string, args []any) *goredis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", sc.Hash(), len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	return goredis.NewCmd(ctx, append(a, args...)...)
}

// once is a script call go-redis must never send twice. Dial turns the
// client's retries off, but a Redis Cluster client still sends a command
// again after a timeout or a dropped connection (its MaxRedirects loop),
// though the first may have run: a reserve script would take its units
// and the buyer's share of the limit twice, a transfer's first half give
// its units twice. MOVED and ASK answers, which mean the command did not
// run, are still followed.
type once struct{ *goredis.Cmd }

// NoRetry implements goredis.Cmder.
func (once) NoRetry() bool { return true }

func isNoScript(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}
