package consumers_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// proxyMode is what a faultProxy does with traffic.
type proxyMode int

const (
	proxyPass      proxyMode = iota // forward both ways
	proxyFreeze                     // hold everything, both ways, connections open (a paused server)
	proxyBlackhole                  // forward server to client, discard client to server (lost acks)
	proxyDown                       // refuse new connections (a stopped server); see cut for live ones
)

// faultProxy is a TCP proxy on 127.0.0.1 in front of the sandbox server, to inject the faults
// a real network or cluster produces: a server that hangs, traffic that is lost, connections
// that drop. TLS passes through it unchanged.
type faultProxy struct {
	ln      net.Listener
	target  string
	dropped atomic.Int64 // client to server bytes discarded in proxyBlackhole

	mu    sync.Mutex
	cond  *sync.Cond
	mode  proxyMode
	conns map[net.Conn]struct{}
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.restore()
	})
	return p
}

// url is the proxy's client URL.
func (p *faultProxy) url() string { return "tls://" + p.ln.Addr().String() }

func (p *faultProxy) setMode(m proxyMode) {
	p.mu.Lock()
	p.mode = m
	p.cond.Broadcast()
	p.mu.Unlock()
}

// cut closes every proxied connection at once; data held or in flight is lost.
func (p *faultProxy) cut() {
	p.mu.Lock()
	p.closeAll()
	p.mu.Unlock()
}

// restore cuts every connection, losing what was held or in flight, and forwards everything
// again: the server is back, the clients reconnect.
func (p *faultProxy) restore() {
	p.mu.Lock()
	p.closeAll()
	p.mode = proxyPass
	p.mu.Unlock()
}

func (p *faultProxy) closeAll() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.cond.Broadcast()
}

func (p *faultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.mode == proxyDown
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

func (p *faultProxy) live(c net.Conn) bool {
	_, ok := p.conns[c]
	return ok
}

func (p *faultProxy) pipe(src, dst net.Conn, upstream bool) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.mode == proxyFreeze && p.live(src) {
				p.cond.Wait()
			}
			mode, live := p.mode, p.live(src)
			p.mu.Unlock()
			if !live {
				return
			}
			if upstream && mode == proxyBlackhole {
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
