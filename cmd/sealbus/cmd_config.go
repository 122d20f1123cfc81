package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

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
		cert, key, ca, cluster, outDir, asDir                      string
		tlsHosts, nodes                                            []string
		port, httpPort, clusterPort                                int
		cipher                                                     string
		verify                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Write a nats-server config: operator mode, full resolver, encrypted JetStream, TLS",
		Long: `server renders a configuration for a stock nats-server: the operator JWT, the system
account, a full account resolver with every account of the keystore preloaded, JetStream with
storage encryption (--cipher: AES, or ChaCha20 for a CPU without AES instructions) and TLS
required (mTLS with --verify). A server whose store was written under the other cipher converts
it as it loads it.

Without --tls-cert, a CA and a server certificate for --tls-host names are generated (once) under
--dir/tls; the storage key is generated (once) at --storage-key-file. The config holds the
storage key: --out writes it with mode 0600.

With --cluster NAME --nodes n1,n2,n3 it writes one configuration per node into --out-dir
(NODE.conf): server name NODE, routes over verified TLS to every other node at NODE:--cluster-port
(advertised by name, so gossiped routes verify), JetStream clustered, and a store and resolver
per node (DIR/NODE/...). A generated certificate then also names every node. --as-dir writes
the paths under --dir as the server sees them (e.g. where a container mounts --dir). It needs
no passphrase: only public JWTs go into a configuration.`,
		Example: `  sealbus config server --out /etc/nats/sealbus.conf
  sealbus config server --port 4443 --tls-cert srv.pem --tls-key srv.key --tls-ca ca.pem --verify
  sealbus config server --cluster sealbus --nodes n1,n2,n3 --host 0.0.0.0 --dir ./state/server --as-dir /sealbus --out-dir ./state/server`,
		Args: exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (cluster == "") != (len(nodes) == 0) {
				return usageErr("--cluster and --nodes go together")
			}
			if cluster != "" && (outDir == "" || out != "") {
				return usageErr("a cluster's configurations go to --out-dir (one NODE.conf each), not --out")
			}
			if cluster != "" && len(nodes) < 2 {
				return usageErr("a cluster needs at least 2 --nodes")
			}
			for _, n := range nodes {
				if !validNode(n) {
					return usageErr("--nodes: %q is not a host name", n)
				}
			}
			s, err := a.openReadOnly()
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
				hosts := tlsHosts
				for _, n := range nodes {
					if !slices.Contains(hosts, n) {
						hosts = append(slices.Clone(hosts), n)
					}
				}
				if _, err := devserver.EnsureTLS(tdir, hosts); err != nil {
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
			// view maps a path under --dir to where the server sees it (--as-dir).
			view := func(p string) string {
				if asDir == "" {
					return p
				}
				if rel, err := filepath.Rel(dir, p); err == nil && filepath.IsLocal(rel) {
					return filepath.ToSlash(filepath.Join(asDir, rel))
				}
				return p
			}
			base := operator.ServerConfig{
				Operator: s.op, Accounts: accts, Host: host, Port: port,
				StorageKey: storageKey, StorageCipher: cipher, TLSCert: view(cert), TLSKey: view(key), TLSCA: view(ca),
				VerifyClients: verify, ServerName: serverName, HTTPPort: httpPort,
			}
			if cluster != "" {
				var written []string
				for _, n := range nodes {
					cfg := base
					cfg.ServerName = n
					cfg.StoreDir = firstNonEmpty(storeDir, view(filepath.Join(dir, n, "jetstream")))
					cfg.ResolverDir = firstNonEmpty(resolverDir, view(filepath.Join(dir, n, "resolver")))
					cl := &operator.ClusterConfig{Name: cluster, Port: clusterPort, Advertise: net.JoinHostPort(n, strconv.Itoa(clusterPort))}
					for _, m := range nodes {
						if m != n {
							cl.Routes = append(cl.Routes, "nats-route://"+net.JoinHostPort(m, strconv.Itoa(clusterPort)))
						}
					}
					cfg.Cluster = cl
					data, err := cfg.Render()
					if err != nil {
						return err
					}
					path := filepath.Join(outDir, n+".conf")
					if err := atomicfile.Write(path, data, atomicfile.Private); err != nil {
						return err
					}
					written = append(written, path)
				}
				return a.print(map[string]any{"cluster": cluster, "nodes": nodes, "paths": written, "accounts": len(accts), "ca_file": ca}, func(w io.Writer) {
					for _, p := range written {
						fmt.Fprintf(w, "wrote %s (mode 0600: it holds the storage key)\n", p)
					}
					fmt.Fprintf(w, "cluster %s: %d nodes, %d account(s) preloaded; clients trust %s\n", cluster, len(nodes), len(accts), ca)
				})
			}
			cfg := base
			cfg.StoreDir = firstNonEmpty(storeDir, view(filepath.Join(dir, "jetstream")))
			cfg.ResolverDir = firstNonEmpty(resolverDir, view(filepath.Join(dir, "resolver")))
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
	f.StringVar(&cipher, "cipher", "aes", "JetStream storage cipher: aes, or chacha where the server's CPU has no AES instructions")
	f.StringVar(&keyFile, "storage-key-file", "", "JetStream storage key file, created if missing (default DIR/jetstream.key)")
	f.StringVar(&cert, "tls-cert", "", "server certificate (default: generated)")
	f.StringVar(&key, "tls-key", "", "server key")
	f.StringVar(&ca, "tls-ca", "", "CA of client certificates (with --verify)")
	f.StringSliceVar(&tlsHosts, "tls-host", devserver.LoopbackHosts, "names of a generated server certificate")
	f.BoolVar(&verify, "verify", false, "require client certificates (mTLS)")
	f.StringVar(&cluster, "cluster", "", "cluster name: write one configuration per --nodes entry")
	f.StringSliceVar(&nodes, "nodes", nil, "cluster node names (host names the nodes reach each other by)")
	f.IntVar(&clusterPort, "cluster-port", 6222, "route port of every node")
	f.StringVar(&outDir, "out-dir", "", "directory for the cluster's NODE.conf files")
	f.StringVar(&asDir, "as-dir", "", "write paths under --dir as under this directory (where the server mounts it)")
	return cmd
}

// validNode reports whether n can be a node name: a host name of letters, digits, '-' and '.'.
func validNode(n string) bool {
	if n == "" || len(n) > 63 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
