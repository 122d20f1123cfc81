package operator

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/atomicfile"
)

// NATSContext is a context of the stock `nats` CLI (natscli, ADR-21 context files): where the
// server is, how to trust it and who to be. Written by [WriteNATSContext], it makes every
// `nats` command a service's permissions allow work as that service, including request/reply
// commands, through the service's private inbox prefix.
type NATSContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	Creds       string `json:"creds"`
	CA          string `json:"ca,omitempty"`
	Cert        string `json:"cert,omitempty"`
	Key         string `json:"key,omitempty"`
	InboxPrefix string `json:"inbox_prefix,omitempty"`
}

// NATSContextDir is where the nats CLI looks for contexts: $XDG_CONFIG_HOME/nats/context, else
// ~/.config/nats/context.
func NATSContextDir() (string, error) {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("operator: no home directory for the nats contexts: %w", err)
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "nats", "context"), nil
}

// ServiceContext is the context of a service: its creds file, the target's first URL, CA and
// client certificate, and the inbox prefix its permissions allow ([accounts.InboxPrefix]).
func ServiceContext(t Target, account string, svc *accounts.Service, credsPath string) NATSContext {
	c := NATSContext{
		Description: fmt.Sprintf("sealbus service %s/%s", account, svc.Spec.Name),
		Creds:       credsPath, CA: t.RootCA, Cert: t.ClientCert, Key: t.ClientKey,
		InboxPrefix: accounts.InboxPrefix(svc.UserPublicKey()),
	}
	if len(t.URLs) > 0 {
		c.URL = t.URLs[0]
	}
	return c
}

// WriteNATSContext writes c as dir/name.json (mode 0600; dir 0700), replacing a context of
// that name. name must be a valid sealbus name (it becomes a file name).
func WriteNATSContext(dir, name string, c NATSContext) (string, error) {
	if !accounts.ValidName(name) {
		return "", fmt.Errorf("%w: context name %q", ErrInvalidSpec, name)
	}
	if c.URL == "" || c.Creds == "" {
		return "", fmt.Errorf("%w: a nats context needs a server URL and a creds file", ErrInvalidSpec)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", fmt.Errorf("operator: encode nats context: %w", err)
	}
	path := filepath.Join(dir, name+".json")
	return path, atomicfile.Write(path, append(b, '\n'), atomicfile.Private)
}
