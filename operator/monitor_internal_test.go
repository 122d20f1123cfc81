package operator

import "context"

var t0ctx = context.Background()

type memStore struct{ save func([]byte) }

func (memStore) LoadState(context.Context) ([]byte, error) { return nil, nil }
func (s memStore) SaveState(_ context.Context, b []byte) error {
	s.save(b)
	return nil
}
