// Package deploy holds the deployment files of reconcile: the Kubernetes
// manifests (*.yaml), the Postgres roles (postgres-role.sql) and the RAM
// policy (ram-policy.json). It has no code; its test decodes every manifest
// strictly into Kubernetes' API types and checks every pod template against
// Kubernetes' own Pod Security "restricted" evaluator.
package deploy

import "embed"

// Manifests are the Kubernetes manifests of this directory.
//
//go:embed *.yaml
var Manifests embed.FS
