// Package faultproxy is a TCP proxy on 127.0.0.1 for tests: it sits in front of a server and
// injects the faults a real network or cluster produces — a server that hangs, traffic that is
// lost, connections that drop, a server that is down. TLS passes through it unchanged.
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Mode is what a Proxy does with traffic.
type Mode int

const (
	Pass      Mode = iota // forward both ways
	Freeze                // hold everything, both ways, connections open (a paused server)
	Blackhole             // forward server to client, discard client to server (lost acks)
	Down                  // refuse new connections (a stopped server); see Cut for live ones
)

// Proxy forwards TCP connections from 127.0.0.1 to a target, with a fault [Mode].
type Proxy struct {
	ln      net.Listener
	target  string
	dropped atomic.Int64

	mu    sync.Mutex
	cond  *sync.Cond
	mode  Mode
	conns map[net.Conn]struct{}
}

// Start listens on 127.0.0.1 and forwards to target (host:port); the proxy closes in
// t.Cleanup.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.Restore()
	})
	return p
}

// URL is the proxy's client URL (tls://127.0.0.1:port).
func (p *Proxy) URL() string { return "tls://" + p.ln.Addr().String() }

// Dropped is the number of client-to-server bytes discarded in Blackhole mode.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// SetMode changes what the proxy does with traffic from now on.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	p.mode = m
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Cut closes every proxied connection at once; data held or in flight is lost.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.closeAll()
	p.mu.Unlock()
}

// Restore cuts every connection, losing what was held or in flight, and forwards everything
// again: the server is back, the clients reconnect.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.closeAll()
	p.mode = Pass
	p.mu.Unlock()
}

func (p *Proxy) closeAll() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.cond.Broadcast()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.mode == Down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, s, true)
		go p.pipe(s, c, false)
	}
}

func (p *Proxy) live(c net.Conn) bool {
	_, ok := p.conns[c]
	return ok
}

func (p *Proxy) pipe(src, dst net.Conn, upstream bool) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.mode == Freeze && p.live(src) {
				p.cond.Wait()
			}
			mode, live := p.mode, p.live(src)
			p.mu.Unlock()
			if !live {
				return
			}
			if upstream && mode == Blackhole {
				p.dropped.Add(int64(n))
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: both sides close
		}
	}
}
