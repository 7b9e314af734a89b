// Package modeltest holds the model-based randomized test of `reconcile run`
// (model_test.go): seeded random sequences of edits to the desired rows
// interleaved with runs of the job under the simulator's fault profiles,
// with the contract's invariants checked after every run. It has no code
// outside its tests.
package modeltest
