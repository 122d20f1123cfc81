//go:build !linux

package bench

func affinityCPUs() int { return 0 }

func affinityCPUsOf(int) int { return 0 }
