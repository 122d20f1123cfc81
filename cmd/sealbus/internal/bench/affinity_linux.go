package bench

import "golang.org/x/sys/unix"

// affinityCPUs returns the number of CPUs this process may run on, or 0 if unknown.
func affinityCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	return set.Count()
}
