package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var updateDocs = flag.Bool("update", false, "rewrite the command reference of docs/CLI.md from --help")

const (
	cliDoc        = "../../docs/CLI.md"
	referenceMark = "<!-- The command reference below is generated from --help: go test ./cmd/sealbus -run TestCLIReferenceMatchesHelp -update -->"
)

// reference renders every command of the CLI the way its --help shows it: the one-line
// summary, usage, description, the command's own flags and its examples. Global flags
// (--home, --json) are documented once at the top of docs/CLI.md.
func reference(root *cobra.Command) string {
	var b strings.Builder
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c != root {
			b.WriteString("\n### `" + c.CommandPath() + "`\n\n")
			b.WriteString(c.Short + "\n\n")
			b.WriteString("```\n" + c.UseLine() + "\n```\n")
			if c.Long != "" {
				b.WriteString("\n" + strings.TrimSpace(c.Long) + "\n")
			}
			if fl := c.LocalNonPersistentFlags().FlagUsages(); fl != "" {
				b.WriteString("\nFlags:\n\n```\n" + fl + "```\n")
			}
			if c.HasAvailableSubCommands() {
				b.WriteString("\nSubcommands:")
				for _, s := range c.Commands() {
					if !s.Hidden && s.Name() != "help" {
						b.WriteString(" `" + s.Name() + "`")
					}
				}
				b.WriteString("\n")
			}
			if c.Example != "" {
				b.WriteString("\nExamples:\n\n```\n" + c.Example + "\n```\n")
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return b.String()
}

// TestCLIReferenceMatchesHelp holds docs/CLI.md to --help: the part after the marker must be
// exactly the reference rendered from the command tree, so every command (including ones added
// later: the test walks the tree) is documented with its usage, flags and examples as --help
// shows them. Run with -update to regenerate it after changing a command.
func TestCLIReferenceMatchesHelp(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SEALBUS_HOME", "/nonexistent-home")
	a := &app{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard}
	want := reference(a.rootCmd())
	doc, err := os.ReadFile(cliDoc)
	if err != nil {
		t.Fatal(err)
	}
	head, got, found := strings.Cut(string(doc), referenceMark+"\n")
	if !found {
		t.Fatalf("docs/CLI.md lacks the reference marker line %q", referenceMark)
	}
	if *updateDocs {
		if err := os.WriteFile(cliDoc, []byte(head+referenceMark+"\n"+want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("docs/CLI.md differs from --help at reference line %d:\n  doc:  %q\n  help: %q\nrun: go test ./cmd/sealbus -run TestCLIReferenceMatchesHelp -update", i+1, g, w)
			}
		}
	}
	// Every command has its section (the comparison above implies it; say it plainly).
	for _, c := range allCommands(a.rootCmd()) {
		if c.Name() != "help" && !c.Hidden && c.HasParent() && !strings.Contains(got, "### `"+c.CommandPath()+"`") {
			t.Errorf("docs/CLI.md has no section for %s", c.CommandPath())
		}
	}
}
