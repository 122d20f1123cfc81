package sealbus_test

// The layering of docs/ARCHITECTURE.md, held against the code: imports point down, internal
// packages are leaves, and public APIs name no internal type and no raw NATS handle in bus.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sealbus/sealbus"

// layer of each public package (docs/ARCHITECTURE.md, "Layers"). A package may import
// packages of a lower layer and internal leaves; examples are checked separately.
var layers = map[string]int{
	"envelope":    1,
	"accounts":    1,
	"bus":         2,
	"consumers":   3,
	"operator":    4,
	"sealbustest": 5,
	"sealbusprom": 5,
	"cmd/sealbus": 6,
}

type goPackage struct {
	ImportPath string
	Name       string
	Imports    []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < len(layers) {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

// rel is a package's path inside the module ("" for another module).
func rel(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	r, ok := strings.CutPrefix(importPath, module+"/")
	return r, ok
}

// home is the public package a package belongs to: its layer entry, or its own path.
// envelope/internal/x belongs to envelope, cmd/sealbus/internal/demo to cmd/sealbus.
func home(r string) string {
	for p := range layers {
		if r == p || strings.HasPrefix(r, p+"/") {
			return p
		}
	}
	return r
}

func isLeaf(r string) bool { return strings.HasPrefix(r, "internal/") }

func TestImportsPointDown(t *testing.T) {
	pkgs := listPackages(t)
	checked := 0
	for _, p := range pkgs {
		r, _ := rel(p.ImportPath)
		for _, imp := range p.Imports {
			ir, ours := rel(imp)
			if !ours {
				continue
			}
			checked++
			switch {
			case isLeaf(r):
				if !isLeaf(ir) {
					t.Errorf("%s is an internal leaf but imports %s", r, ir)
				}
			case strings.HasPrefix(r, "examples/"):
				if h := home(ir); h != "bus" && h != "consumers" && h != "envelope" {
					t.Errorf("example %s imports %s; examples use only the public SDK (bus, consumers, envelope)", r, ir)
				}
			default:
				from, ok := layers[home(r)]
				if !ok {
					t.Errorf("package %s has no layer in docs/ARCHITECTURE.md", r)
					continue
				}
				if isLeaf(ir) || home(ir) == home(r) {
					continue
				}
				to, ok := layers[home(ir)]
				if !ok || to >= from {
					t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", r, from, ir, to)
				}
			}
		}
	}
	for _, imp := range importsOf(pkgs, "envelope") {
		if strings.HasPrefix(imp, "github.com/nats-io/nats") {
			t.Errorf("envelope imports %s: the envelope knows nothing of NATS", imp)
		}
	}
	if checked == 0 {
		t.Fatal("no import of a sealbus package was checked")
	}
}

func importsOf(pkgs []goPackage, r string) []string {
	for _, p := range pkgs {
		if pr, _ := rel(p.ImportPath); pr == r {
			return p.Imports
		}
	}
	return nil
}

// TestPublicAPIsNameNoInternalType reads the exported API of every public package (go doc
// -all) and refuses any mention of an internal package; in bus, any NATS connection or
// JetStream handle.
func TestPublicAPIsNameNoInternalType(t *testing.T) {
	pkgs := listPackages(t)
	var internal []string
	for _, p := range pkgs {
		if r, _ := rel(p.ImportPath); isLeaf(r) || strings.Contains(r, "/internal/") {
			internal = append(internal, p.Name)
		}
	}
	slices.Sort(internal)
	internal = slices.Compact(internal)
	mention := regexp.MustCompile(`\b(` + strings.Join(internal, "|") + `)\.[A-Z]`)
	constValue := regexp.MustCompile(`^(const )?\s*[A-Z]\w*\s*=\s*\w+\.[A-Z]\w*\s*(//.*)?$`)
	rawNATS := regexp.MustCompile(`\*nats\.Conn\b|jetstream\.JetStream\b|\*nats\.Msg\b|nats\.JetStreamContext\b`)
	for _, p := range pkgs {
		r, _ := rel(p.ImportPath)
		if r == "" || isLeaf(r) || strings.Contains(r, "internal") || p.Name == "main" {
			continue
		}
		out, err := exec.Command("go", "doc", "-all", p.ImportPath).CombinedOutput()
		if err != nil {
			t.Fatalf("go doc %s: %v\n%s", r, err, out)
		}
		inConst := false
		for _, line := range strings.Split(string(out), "\n") {
			// Constants may take their values from an internal package (one source of truth,
			// as envelope's Version = format.Version): a value, not a type users must name.
			switch {
			case strings.HasPrefix(line, "const ("):
				inConst = true
			case inConst && line == ")":
				inConst = false
			}
			isConstValue := (inConst || strings.HasPrefix(line, "const ")) && constValue.MatchString(line)
			if m := mention.FindString(line); m != "" && !isConstValue {
				t.Errorf("%s's API mentions the internal package %s: %s", r, strings.TrimSuffix(m, path.Ext(m)), strings.TrimSpace(line))
			}
			if r == "bus" && rawNATS.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("bus's API hands out a raw NATS handle (a way to publish unsealed): %s", strings.TrimSpace(line))
			}
		}
	}
}
