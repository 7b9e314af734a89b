package live_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/reconcile/reconcile/internal/live"
	"github.com/reconcile/reconcile/internal/livesim"
)

// A Client sends the four snapshot-callback operations and classifies every
// answer. Here it talks to the project's simulator; against the real API,
// set Endpoint to config.DefaultEndpoint (live.aliyuncs.com) and use live.DefaultChain() for
// credentials.
func ExampleClient() {
	sim := livesim.New(livesim.Options{AccessKeyID: "id", AccessKeySecret: "secret"})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()

	ctx := context.Background()
	c, err := live.New(ctx, live.Options{Endpoint: srv.URL, Region: "cn-shanghai",
		Credentials: live.StaticCredentials("id", "secret", "")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	req := live.Request{Domain: "live.example.com", NotifyURL: "https://hooks.example.com/snap"}
	_, err = c.Add(ctx, req)
	fmt.Println("first Add:", live.Classify(err))
	_, err = c.Add(ctx, req)
	fmt.Println("second Add:", live.Classify(err), live.ErrorCode(err))
	cfg, _, _ := c.Describe(ctx, req.Domain, "")
	fmt.Println("Describe:", cfg.Exists, cfg.NotifyURL)
	// Output:
	// first Add: ok
	// second Add: duplicate ConfigAlreadyExists
	// Describe: true https://hooks.example.com/snap
}
