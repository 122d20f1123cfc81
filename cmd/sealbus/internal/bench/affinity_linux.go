package bench

import "golang.org/x/sys/unix"

// affinityCPUs returns the number of CPUs this process may run on, or 0 if unknown.
func affinityCPUs() int { return affinityCPUsOf(0) }

// affinityCPUsOf returns the number of CPUs process pid (0: this one) may run on, or 0 if
// unknown.
func affinityCPUsOf(pid int) int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		return 0
	}
	return set.Count()
}
