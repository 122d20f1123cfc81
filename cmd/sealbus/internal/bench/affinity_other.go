//go:build !linux

package bench

func affinityCPUs() int { return 0 }
