package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sealbus/sealbus/accounts"
)

// TestExitCodesAsDocumented runs an example of each row of the exit-code table of
// docs/CLI.md and checks the code; the table itself must list exactly the codes the CLI uses.
func TestExitCodesAsDocumented(t *testing.T) {
	cleanEnv(t)
	doc, err := os.ReadFile(cliDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\| ([0-9]) \| ([a-z ]+) \|`).FindAllStringSubmatch(string(doc), -1)
	documented := map[int]string{}
	for _, r := range rows {
		documented[int(r[1][0]-'0')] = r[2]
	}
	for code, meaning := range map[int]string{exitOK: "success", exitError: "error", exitUsage: "usage error", exitNotFound: "not found", exitRefused: "verification or authorization refused"} {
		if documented[code] != meaning {
			t.Errorf("docs/CLI.md exit code %d: %q, the CLI means %q", code, documented[code], meaning)
		}
	}

	home := t.TempDir()
	t.Setenv("SEALBUS_PASSPHRASE", "correct horse battery")
	empty := t.TempDir()
	foreignJWT := func() string {
		op, _ := accounts.NewOperator("foreign")
		acct, _ := op.NewAccount("x", accounts.DefaultLimits())
		return acct.JWT
	}()
	steps := []struct {
		name string
		home string
		env  map[string]string
		args []string
		code int
		has  string
	}{
		{"no keystore", empty, nil, []string{"account", "list"}, exitNotFound, "no keystore"},
		{"weak passphrase at init", home, map[string]string{"SEALBUS_PASSPHRASE": "short"}, []string{"init"}, exitUsage, "passphrase too short"},
		{"init", home, nil, []string{"init"}, exitOK, ""},
		{"init again", home, nil, []string{"init"}, exitError, "already exists"},
		{"unknown command", home, nil, []string{"frobnicate"}, exitUsage, "unknown command"},
		{"unknown flag", home, nil, []string{"account", "list", "--bogus"}, exitUsage, "unknown flag"},
		{"wrong argument count", home, nil, []string{"account", "add"}, exitUsage, "takes 1 argument"},
		{"invalid name", home, nil, []string{"account", "add", "bad name"}, exitUsage, ""},
		{"invalid size", home, nil, []string{"account", "add", "x", "--disk-storage", "lots"}, exitUsage, "--disk-storage"},
		{"negative limit", home, nil, []string{"account", "add", "x", "--connections", "-5"}, exitUsage, "negative"},
		{"account add", home, nil, []string{"account", "add", "shop"}, exitOK, ""},
		{"exists", home, nil, []string{"account", "add", "shop"}, exitError, "already exists"},
		{"invalid subject", home, nil, []string{"service", "add", "shop", "s", "--pub", "$JS.API.>"}, exitUsage, ""},
		{"invalid duration", home, nil, []string{"service", "add", "shop", "s", "--validity", "soon"}, exitUsage, "--validity"},
		{"filter not covered by --sub", home, nil, []string{"service", "add", "shop", "s", "--sub", "a.b", "--consumer", "S:s", "--filter", "S:s=c.d"}, exitUsage, "not covered"},
		{"duplicate window", home, nil, []string{"stream", "add", "shop", "S", "--subjects", "a.>", "--duplicates", "30s"}, exitUsage, "freshness"},
		{"unknown account", home, nil, []string{"account", "show", "shp"}, exitNotFound, "did you mean"},
		{"unknown service", home, nil, []string{"service", "show", "shop", "nope"}, exitNotFound, "no service"},
		{"missing file", home, nil, []string{"inspect", filepath.Join(empty, "nope.creds")}, exitNotFound, ""},
		{"no dev server", home, nil, []string{"stream", "list", "shop"}, exitError, "no `sealbus dev` running"},
		{"wrong passphrase", home, map[string]string{"SEALBUS_PASSPHRASE": "not the passphrase"}, []string{"account", "add", "bank"}, exitRefused, "passphrase"},
		{"untrusted JWT", home, nil, []string{"inspect", "--verify", foreignJWT}, exitRefused, "untrusted operator"},
		{"read-only without passphrase", home, map[string]string{"SEALBUS_PASSPHRASE": ""}, []string{"account", "list"}, exitOK, ""},
		{"a URL that is not TLS", home, nil, []string{"stream", "list", "shop", "--server", "http://x:1"}, exitUsage, "tls://"},
	}
	for _, s := range steps {
		for k, v := range s.env {
			t.Setenv(k, v)
		}
		r := sb(t, s.home, s.args...)
		for k := range s.env {
			t.Setenv(k, "correct horse battery")
			if k != "SEALBUS_PASSPHRASE" {
				t.Setenv(k, "")
			}
		}
		if r.code != s.code {
			t.Errorf("%s: sealbus %s: exit %d, want %d\n%s", s.name, strings.Join(s.args, " "), r.code, s.code, r.stderr)
			continue
		}
		if s.code != exitOK {
			wantCode(t, r, s.code, s.has)
		}
	}
}
