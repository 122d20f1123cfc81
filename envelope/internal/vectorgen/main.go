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
	files := map[string][]byte{}
	for _, v := range vs {
		files[v.Name+vectors.Ext] = v.Marshal()
	}
	if err := writeDir(dir, files); err != nil {
		return err
	}
	fmt.Printf("vectorgen: wrote %d vectors to %s\n", len(vs), strings.TrimSuffix(dir, "/"))

	rs, err := vectors.GenerateRecords()
	if err != nil {
		return err
	}
	files = map[string][]byte{}
	for _, v := range rs {
		files[v.Name+vectors.Ext] = v.Marshal()
	}
	rdir := filepath.Join(dir, vectors.RecordDir)
	if err := writeDir(rdir, files); err != nil {
		return err
	}
	fmt.Printf("vectorgen: wrote %d record vectors to %s\n", len(rs), rdir)
	return nil
}

// writeDir writes files into dir and removes the vector files of dir that are not among them.
func writeDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	old, err := filepath.Glob(filepath.Join(dir, "*"+vectors.Ext))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, keep := files[filepath.Base(p)]; !keep {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}
