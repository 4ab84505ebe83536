package redis

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Client is the Redis client Surge uses: a single server, a master found
// through Sentinel, or a cluster.
type Client = goredis.UniversalClient

// Dial connects to url: redis://[user:pass@]host:port[/db]; for a master
// watched by Redis Sentinel, a Sentinel's address and the master's name,
// redis://sentinel1:26379[/db]?master_name=NAME[&addr=sentinel2:26379…];
// for Redis Cluster, redis://host1:port?addr=host2:port&addr=host3:port.
func Dial(ctx context.Context, url string) (Client, error) {
	var c Client
	clusterOpt, failoverOpt, opt, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	// Every call honours its context's deadline on the socket
	// (ContextTimeoutEnabled), which go-redis otherwise ignores, bounding
	// a read by the URL's read_timeout alone: the cluster store's call
	// timeout bounds each call a purchase waits on, and with ?read_timeout=5s
	// a stalled Redis held every purchase 5 s instead
	// (TestCallTimeoutBoundsStalledRedis). A call whose deadline passes
	// fails as a read timeout does: its connection is closed, and a script
	// call (once) is not sent again. read_timeout still bounds a call
	// whose context has no deadline, or a later one.
	if clusterOpt != nil {
		fast(&clusterOpt.DialTimeout, &clusterOpt.ReadTimeout, &clusterOpt.WriteTimeout, &clusterOpt.MaxRetries, &clusterOpt.DialerRetries)
		clusterOpt.ContextTimeoutEnabled = true
		if clusterOpt.ClusterStateReloadInterval == 0 {
			clusterOpt.ClusterStateReloadInterval = clusterStateReload
		}
		c = goredis.NewClusterClient(clusterOpt)
	} else if failoverOpt != nil {
		// The client asks the Sentinels for the master, and follows a
		// failover they announce (+switch-master): without it a node
		// could only be given the master's own address, and kept calling
		// the old master, down or made a replica (READONLY), until an
		// operator changed every node's URL.
		fast(&failoverOpt.DialTimeout, &failoverOpt.ReadTimeout, &failoverOpt.WriteTimeout, &failoverOpt.MaxRetries, &failoverOpt.DialerRetries)
		failoverOpt.ContextTimeoutEnabled = true
		c = goredis.NewFailoverClient(failoverOpt)
	} else {
		fast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.MaxRetries, &opt.DialerRetries)
		opt.ContextTimeoutEnabled = true
		c = goredis.NewClient(opt)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis: ping %s: %w", redacted(url), err)
	}
	return c, nil
}

// CheckURL refuses a URL Dial could not parse, without connecting: a
// configuration is checked whole before anything starts (--print-config,
// SIGHUP).
func CheckURL(url string) error {
	_, _, _, err := parseURL(url)
	return err
}

// parseURL reads url as Dial does: Sentinel's options when it names a
// master (master_name=; its addr= are more Sentinels), else Redis
// Cluster's when it names more than one address (addr=), else a single
// server's.
func parseURL(url string) (*goredis.ClusterOptions, *goredis.FailoverOptions, *goredis.Options, error) {
	if u, err := neturl.Parse(url); err == nil && u.Query().Has("master_name") {
		opt, err := goredis.ParseFailoverURL(url)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("redis: parse url: %w", withoutURL(err))
		}
		if opt.MasterName == "" {
			return nil, nil, nil, errors.New("redis: parse url: master_name is empty")
		}
		return nil, opt, nil, nil
	}
	if strings.Contains(url, "addr=") {
		opt, err := goredis.ParseClusterURL(url)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("redis: parse url: %w", withoutURL(err))
		}
		return opt, nil, nil, nil
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("redis: parse url: %w", withoutURL(err))
	}
	return nil, nil, opt, nil
}

// redacted is url as an error or a log may show it: its password masked.
// A URL that does not parse is not shown at all: it may hold anything.
func redacted(url string) string {
	u, err := neturl.Parse(url)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// withoutURL is a parse error without the URL it quotes whole, password
// included (*url.Error).
func withoutURL(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// clusterStateReload is how old the client's map of a Redis Cluster's
// slots may get before a call reloads it (CLUSTER SLOTS from one node, in
// the background). go-redis reloads it at once on a MOVED answer, but a
// master that died answers nothing: until its replica is promoted and the
// map reloaded, every call for its slots fails. go-redis's default, 60 s,
// kept a failed-over sale refusing purchases for a minute
// (TestRedisClusterFailover); a second costs one small call a second.
const clusterStateReload = time.Second

// fast bounds every wait on Redis unless the URL chose otherwise: a dead
// server must fail purchases in about a second, not hold them. It also
// turns the client's retries off: a reserve script whose reply was lost
// may have run, and running it again would take its units twice. A failed
// call fails its batch; buyers retry with their Idempotency-Key. It also
// dials once per connection instead of go-redis's five times 100 ms, which
// held every purchase half a second on a dead server instead of failing it.
func fast(dial, read, write *time.Duration, retries, dialerRetries *int) {
	for _, d := range []*time.Duration{dial, read, write} {
		if *d == 0 {
			*d = time.Second
		}
	}
	*retries = -1
	if *dialerRetries == 0 {
		*dialerRetries = 1
	}
}
