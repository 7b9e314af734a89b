package testdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// ContainerImage is the image source 2 runs.
const ContainerImage = "postgres:15-alpine"

// startContainer starts a Postgres container when a Docker engine answers.
func startContainer(ctx context.Context) (adminURL string, stop func() error, err error) {
	if err := dockerHealthy(ctx); err != nil {
		return "", nil, fmt.Errorf("no Docker engine: %w", err)
	}
	ctr, err := tcpostgres.Run(ctx, ContainerImage,
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
	)
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return "", nil, fmt.Errorf("start %s: %w", ContainerImage, err)
	}
	u, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return "", nil, err
	}
	return u, func() error { return testcontainers.TerminateContainer(ctr) }, nil
}

// dockerHealthy asks the default provider for the engine's info, within a
// few seconds. testcontainers may panic when no engine is configured.
func dockerHealthy(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return err
	}
	if p == nil {
		return errors.New("no provider")
	}
	defer p.Close()
	return p.Health(ctx)
}
