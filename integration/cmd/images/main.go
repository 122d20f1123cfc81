// Command images builds the images deploy/compose.yaml runs — the nats-server and example
// services images (natstest.NATSImage, natstest.ExamplesImage), FROM scratch, from the Go
// modules here; nothing is pulled — and writes their tags, with the sealbus image's tag given
// by -sealbus (from `make image`), into an env file docker compose reads (deploy/.env).
//
//	go run ./cmd/images -sealbus sealbus/sealbus:v0.1.0 -env ../deploy/.env
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sealbus/sealbus/integration/natstest"
)

func main() {
	sealbus := flag.String("sealbus", "", "tag of the sealbus image (make image)")
	env := flag.String("env", "", "env file to write (default: print)")
	flag.Parse()
	if err := run(*sealbus, *env); err != nil {
		fmt.Fprintln(os.Stderr, "images: error:", err)
		os.Exit(1)
	}
}

func run(sealbus, env string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	nats, err := natstest.NATSImage(ctx)
	if err != nil {
		return err
	}
	examples, err := natstest.ExamplesImage(ctx)
	if err != nil {
		return err
	}
	out := fmt.Sprintf("NATS_IMAGE=%s\nEXAMPLES_IMAGE=%s\n", nats, examples)
	if sealbus != "" {
		out += "SEALBUS_IMAGE=" + sealbus + "\n"
	}
	if env == "" {
		fmt.Print(out)
		return nil
	}
	if err := os.WriteFile(env, []byte(out), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s:\n%s", env, out)
	return nil
}
