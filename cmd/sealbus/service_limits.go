package main

import (
	"strconv"

	"github.com/spf13/pflag"

	"github.com/sealbus/sealbus/accounts"
)

// serviceLimitFlags are the per-service limit flags of `service add` (docs/PERMISSIONS.md,
// "Per-service limits"); unset flags take accounts.DefaultServiceLimits.
type serviceLimitFlags struct {
	conns, subs int64
	payload     string
}

func addServiceLimitFlags(f *pflag.FlagSet, l *serviceLimitFlags) {
	def := accounts.DefaultServiceLimits()
	f.Int64Var(&l.conns, "max-connections", 0, "connections the service may hold at once, enforced by the connection guard (default "+strconv.FormatInt(def.Connections, 10)+")")
	f.Int64Var(&l.subs, "max-subscriptions", 0, "subscriptions per connection, enforced by the server (default "+strconv.FormatInt(def.Subscriptions, 10)+")")
	f.StringVar(&l.payload, "max-payload", "", "largest message the service may publish, enforced by the server (default: the account's limit; a service cannot dead-letter envelopes larger than its own limit)")
}

// resolve returns the limits the flags give; zero fields take the defaults when the service is
// issued.
func (l serviceLimitFlags) resolve() (accounts.ServiceLimits, error) {
	out := accounts.ServiceLimits{Connections: l.conns, Subscriptions: l.subs}
	if l.payload != "" {
		n, err := parseBytes(l.payload)
		if err != nil {
			return out, usageErr("--max-payload: %v", err)
		}
		out.MaxPayload = n
	}
	if err := out.Validate(); err != nil {
		return out, usageErr("%v", err)
	}
	return out, nil
}
