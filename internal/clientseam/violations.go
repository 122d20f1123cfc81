package clientseam

import (
	"regexp"
	"sync"
)

// Violations fans the server's permission errors on one connection out to whoever waits for
// one: the server answers a publish it refuses with an asynchronous error naming the subject,
// and a request on that subject would otherwise only time out. Safe for concurrent use; the
// zero value is ready.
type Violations struct {
	mu   sync.Mutex
	next int
	w    map[int]func(subject string, err error)
}

// publishTo reads the subject of nats-server's "Permissions Violation for Publish to "<subject>"".
var publishTo = regexp.MustCompile(`Publish to "([^"]+)"`)

// Report passes a permission error to every watcher, with the subject it names ("" when it
// names none).
func (v *Violations) Report(err error) {
	subject := ""
	if m := publishTo.FindStringSubmatch(err.Error()); m != nil {
		subject = m[1]
	}
	v.mu.Lock()
	fs := make([]func(string, error), 0, len(v.w))
	for _, f := range v.w {
		fs = append(fs, f)
	}
	v.mu.Unlock()
	for _, f := range fs {
		f(subject, err)
	}
}

// Watch calls f for every permission error reported until stop is called. f must not block.
func (v *Violations) Watch(f func(subject string, err error)) (stop func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.w == nil {
		v.w = map[int]func(string, error){}
	}
	id := v.next
	v.next++
	v.w[id] = f
	return func() {
		v.mu.Lock()
		delete(v.w, id)
		v.mu.Unlock()
	}
}
