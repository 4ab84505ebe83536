package main

import (
	"net"
	"testing"
)

// net/http half-closes a connection it ends after an error answer
// (closeWriteAndWait: a FIN, then a pause, so the client reads the answer
// before the RST of its unread bytes) only if the conn has CloseWrite. The
// admin listener served raw *net.TCPConn before openConns.listen wrapped it.
func TestTrackedConnKeepsCloseWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var o openConns
	tl := o.listen(ln)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			b := make([]byte, 1)
			c.Read(b)
		}
	}()
	c, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Fatalf("%T hides the *net.TCPConn's CloseWrite from net/http", c)
	}
}
