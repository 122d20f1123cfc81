package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/internal/atomicfile"
	"github.com/sealbus/sealbus/internal/devserver"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) configCmd() *cobra.Command {
	return group("config", "Generate configuration for a stock nats-server",
		"  sealbus config server --out nats.conf",
		a.configServerCmd())
}

func (a *app) configServerCmd() *cobra.Command {
	var (
		dir, out, host, serverName, storeDir, resolverDir, keyFile string
		cert, key, ca                                              string
		tlsHosts                                                   []string
		port, httpPort                                             int
		verify                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Write a nats-server config: operator mode, full resolver, encrypted JetStream, TLS",
		Long: `server renders a configuration for a stock nats-server: the operator JWT, the system
account, a full account resolver with every account of the keystore preloaded, JetStream with
storage encryption (ChaCha20-Poly1305) and TLS required (mTLS with --verify).

Without --tls-cert, a CA and a server certificate for --tls-host names are generated (once) under
--dir/tls; the storage key is generated (once) at --storage-key-file. The config holds the
storage key: --out writes it with mode 0600.`,
		Example: `  sealbus config server --out /etc/nats/sealbus.conf
  sealbus config server --port 4443 --tls-cert srv.pem --tls-key srv.key --tls-ca ca.pem --verify`,
		Args: exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer s.Close()
			if dir == "" {
				dir = filepath.Join(a.home, "server")
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			if cert == "" {
				if key != "" {
					return usageErr("--tls-key needs --tls-cert")
				}
				tdir := filepath.Join(dir, "tls")
				if _, err := devserver.EnsureTLS(tdir, tlsHosts); err != nil {
					return err
				}
				cert, key = filepath.Join(tdir, "server.crt"), filepath.Join(tdir, "server.key")
				if ca == "" {
					ca = filepath.Join(tdir, "ca.crt")
				}
			}
			if keyFile == "" {
				keyFile = filepath.Join(dir, "jetstream.key")
			}
			storageKey, err := devserver.EnsureStorageKey(keyFile)
			if err != nil {
				return err
			}
			accts, err := s.loadAccounts()
			if err != nil {
				return err
			}
			cfg := operator.ServerConfig{
				Operator: s.op, Accounts: accts, Host: host, Port: port,
				StoreDir:    firstNonEmpty(storeDir, filepath.Join(dir, "jetstream")),
				ResolverDir: firstNonEmpty(resolverDir, filepath.Join(dir, "resolver")),
				StorageKey:  storageKey, TLSCert: cert, TLSKey: key, TLSCA: ca,
				VerifyClients: verify, ServerName: serverName, HTTPPort: httpPort,
			}
			data, err := cfg.Render()
			if err != nil {
				return err
			}
			if out == "" {
				if a.json {
					return a.print(map[string]string{"config": string(data)}, nil)
				}
				_, err := a.stdout.Write(data)
				return err
			}
			if err := atomicfile.Write(out, data, atomicfile.Private); err != nil {
				return err
			}
			return a.print(map[string]any{"path": out, "accounts": len(accts), "ca_file": ca}, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %s (%d account(s) preloaded; mode 0600: it holds the storage key)\n", out, len(accts))
				if ca != "" {
					fmt.Fprintf(w, "clients trust %s\n", ca)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for generated TLS material, key, store and resolver (default HOME/server)")
	f.StringVar(&out, "out", "", "write the config here (0600) instead of standard output")
	f.StringVar(&host, "host", "127.0.0.1", "client listen address")
	f.IntVar(&port, "port", 4222, "client port")
	f.IntVar(&httpPort, "http-port", 0, "monitoring port (0 = off)")
	f.StringVar(&serverName, "server-name", "", "server name")
	f.StringVar(&storeDir, "store-dir", "", "JetStream store directory (default DIR/jetstream)")
	f.StringVar(&resolverDir, "resolver-dir", "", "account resolver directory (default DIR/resolver)")
	f.StringVar(&keyFile, "storage-key-file", "", "JetStream storage key file, created if missing (default DIR/jetstream.key)")
	f.StringVar(&cert, "tls-cert", "", "server certificate (default: generated)")
	f.StringVar(&key, "tls-key", "", "server key")
	f.StringVar(&ca, "tls-ca", "", "CA of client certificates (with --verify)")
	f.StringSliceVar(&tlsHosts, "tls-host", devserver.LoopbackHosts, "names of a generated server certificate")
	f.BoolVar(&verify, "verify", false, "require client certificates (mTLS)")
	return cmd
}
