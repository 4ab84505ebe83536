package main

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	surgehttp "github.com/surgehq/surge/http"
)

// The ConnLimiter's ConnState hook, behind openConns.track and its
// trackedConn wrapper, still learns which connections are idle: at the cap
// a newcomer takes an idle keep-alive connection's slot instead of waiting.
func TestConnLimiterSeesIdleThroughTrackedConn(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := surgehttp.LimitConns(raw, surgehttp.ConnLimits{Max: 2, PressureIdle: time.Millisecond})
	var o openConns
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: o.track(lim.ConnState)}
	serveH2C(hs)
	go hs.Serve(o.listen(lim))
	defer hs.Close()
	url := "http://" + raw.Addr().String() + "/"
	var clients []*http.Client
	for range 2 { // two idle keep-alive connections fill the cap
		c := &http.Client{Transport: &http.Transport{}}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		clients = append(clients, c)
	}
	time.Sleep(20 * time.Millisecond)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("a third connection at the cap of 2 with both idle: %v (the limiter did not see them idle)", err)
	}
	resp.Body.Close()
}
