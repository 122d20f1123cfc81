package natstest

import "errors"

var (
	// ErrNoDocker is returned when no Docker engine answers.
	ErrNoDocker = errors.New("natstest: no Docker engine reachable")
	// ErrInvalidOption is returned by an option given a value it cannot use.
	ErrInvalidOption = errors.New("natstest: invalid option")
	// ErrBuild is returned when a binary or an image cannot be built.
	ErrBuild = errors.New("natstest: build failed")
	// ErrNotReady is returned when a node does not report healthy in time.
	ErrNotReady = errors.New("natstest: node not ready")
	// ErrNoNode is returned for a node index outside the cluster.
	ErrNoNode = errors.New("natstest: no such node")
)
