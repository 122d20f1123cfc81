package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/conf"
)

// TestConfigServerCluster renders a 3-node cluster: one NODE.conf each with its server name,
// routes to the two others by name, the node's own store, paths as the containers see them
// (--as-dir), and a certificate naming every node; no passphrase needed.
func TestConfigServerCluster(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	t.Setenv("SEALBUS_PASSPHRASE", "correct horse battery")
	ok(t, home, "init")
	ok(t, home, "account", "add", "shop")
	t.Setenv("SEALBUS_PASSPHRASE", "") // public JWTs only
	dir := filepath.Join(t.TempDir(), "server")
	var out struct {
		Paths []string `json:"paths"`
	}
	okJSON(t, home, &out, "config", "server", "--cluster", "sealbus", "--nodes", "n1,n2,n3", "--host", "0.0.0.0",
		"--dir", dir, "--as-dir", "/sealbus", "--out-dir", dir)
	if len(out.Paths) != 3 {
		t.Fatalf("paths: %v", out.Paths)
	}
	for i, node := range []string{"n1", "n2", "n3"} {
		m, err := conf.ParseFile(out.Paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if m["server_name"] != node {
			t.Errorf("%s: server_name %v", node, m["server_name"])
		}
		cl, _ := m["cluster"].(map[string]any)
		routes, _ := cl["routes"].([]any)
		if len(routes) != 2 || cl["advertise"] != node+":6222" {
			t.Errorf("%s: cluster %v", node, cl)
		}
		for _, r := range routes {
			if strings.Contains(r.(string), node+":") {
				t.Errorf("%s routes to itself: %v", node, routes)
			}
		}
		js, _ := m["jetstream"].(map[string]any)
		if js["store_dir"] != "/sealbus/"+node+"/jetstream" {
			t.Errorf("%s: store_dir %v", node, js["store_dir"])
		}
		tls, _ := m["tls"].(map[string]any)
		if tls["cert_file"] != "/sealbus/tls/server.crt" {
			t.Errorf("%s: cert_file %v", node, tls["cert_file"])
		}
		if st, err := os.Stat(out.Paths[i]); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v %v", node, st.Mode(), err)
		}
	}
	wantCode(t, sb(t, home, "config", "server", "--cluster", "c", "--out-dir", dir), exitUsage, "--nodes")
}
