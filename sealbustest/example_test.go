package sealbustest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// A test starts a sandbox, adds an account, a stream and two services, and hands the creds
// files, URL, CA file and operator key to the SDK.
func ExampleStartSandbox() {
	ctx := context.Background()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.AddAccount(ctx, "shop", accounts.DefaultLimits()); err != nil {
		log.Fatal(err)
	}
	if err := sb.AddStream(ctx, "shop", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		log.Fatal(err)
	}
	pubCreds, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{Name: "checkout", Publish: []string{"orders.created"}})
	if err != nil {
		log.Fatal(err)
	}
	subCreds, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{
		Name: "billing", Subscribe: []string{"orders.created"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	// bus.Connect(ctx, bus.WithURL(sb.URL()), bus.WithRootCA(sb.CAFile()),
	//     bus.WithCredsFile(pubCreds), bus.WithTrustedOperator(sb.OperatorKey()))
	fmt.Println(pubCreds != "", subCreds != "")
	// Output: true true
}
