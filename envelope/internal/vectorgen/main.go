// Command vectorgen writes the envelope conformance vectors to a directory (default
// envelope/testdata), one file per case, and the record vectors to its records/
// subdirectory, and removes vector files it no longer generates.
// Output is deterministic: the same source always writes the same bytes.
//
//	go run ./envelope/internal/vectorgen [-out envelope/testdata]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealbus/sealbus/envelope/internal/vectors"
)

func main() {
	out := flag.String("out", filepath.Join("envelope", "testdata"), "directory to write the vectors to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "vectorgen: error:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	vs, err := vectors.Generate()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, v := range vs {
		name := v.Name + vectors.Ext
		keep[name] = true
		if err := os.WriteFile(filepath.Join(dir, name), v.Marshal(), 0o644); err != nil {
			return err
		}
	}
	old, err := filepath.Glob(filepath.Join(dir, "*"+vectors.Ext))
	if err != nil {
		return err
	}
	for _, p := range old {
		if !keep[filepath.Base(p)] {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	fmt.Printf("vectorgen: wrote %d vectors to %s\n", len(vs), strings.TrimSuffix(dir, "/"))
	return runRecords(filepath.Join(dir, vectors.RecordDir))
}

// runRecords writes the record vectors (envelope/RECORD.md §8) to dir the same way.
func runRecords(dir string) error {
	vs, err := vectors.GenerateRecords()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, v := range vs {
		name := v.Name + vectors.Ext
		keep[name] = true
		if err := os.WriteFile(filepath.Join(dir, name), v.Marshal(), 0o644); err != nil {
			return err
		}
	}
	old, err := filepath.Glob(filepath.Join(dir, "*"+vectors.Ext))
	if err != nil {
		return err
	}
	for _, p := range old {
		if !keep[filepath.Base(p)] {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	fmt.Printf("vectorgen: wrote %d record vectors to %s\n", len(vs), dir)
	return nil
}
