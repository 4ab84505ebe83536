package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"time"
)

// probe is a health check that needs nothing but the binary: the
// container image (distroless, no shell or curl) runs it as its
// HEALTHCHECK, and a supervisor can too. Exit 0 on a 2xx answer, 1
// otherwise: a command line it cannot use too, since Docker reserves a
// health check's exit code 2 ("do not use"), which every other command's
// usage errors exit with.
func probe(ctx context.Context, args []string, stdout io.Writer) error {
	err := probeURL(ctx, args, stdout)
	var ue errUsage
	if errors.As(err, &ue) {
		return errors.New(ue.msg)
	}
	return err
}

func probeURL(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("probe", "surge probe [--url URL | --config FILE] [--timeout D]", stdout)
	url := fs.String("url", healthURL(os.Getenv(envName("http-addr"))), "URL to GET; any 2xx answer is healthy (/readyz: ready for traffic); default: /healthz at serve's --http-addr as SURGE_HTTP_ADDR or the --config file sets it")
	config := fs.String("config", "", "serve's configuration file: without --url, the http-addr it names is probed, unless SURGE_HTTP_ADDR gives one")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.parse(args); err != nil {
		return err
	}
	set, err := configSettings(fs, args, *config, "http-addr")
	if err != nil {
		return errUsage{"probe: --config: " + err.Error()}
	}
	origin := "--url"
	if _, urlEnv := os.LookupEnv(envName("url")); !urlEnv && !fs.onCommandLine(args)["url"] {
		origin = "serve's http-addr (SURGE_HTTP_ADDR or --config) makes the URL"
		if addr, ok := set["http-addr"]; ok {
			*url = healthURL(addr)
		}
	}
	if fs.NArg() > 0 {
		return errUsage{fmt.Sprintf("probe: unexpected argument %q (use --url)", fs.Arg(0))}
	}
	// "localhost:8080/healthz" parses with the scheme "localhost": say
	// what is missing rather than quote the transport's puzzlement.
	if u, err := neturl.Parse(*url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errUsage{fmt.Sprintf("probe: %s %q is not an http:// or https:// URL such as http://127.0.0.1:8080/healthz", origin, *url)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return errUsage{"probe: --url: " + err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", *url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: %s", *url, resp.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", *url, resp.Status)
	return nil
}

// healthURL is the /healthz of a server serving on addr, serve's
// --http-addr (its default when empty): the container image sets
// SURGE_HTTP_ADDR for serve, and its HEALTHCHECK, run in the same
// environment, must probe where serve listens, whatever port it is given.
// A wildcard host is probed on 127.0.0.1, which Go's listener of [::]
// accepts too.
func healthURL(addr string) string {
	if addr == "" {
		addr = newServeConfig().httpAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/healthz" // refused as the URL it makes, naming it
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}
