package operator

// Exposed to the external tests of this package.
var (
	ReadLast = readLast
	Follow   = follow
)
