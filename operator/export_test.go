package operator

// Exposed to the external tests of this package.
var (
	ReadLast = readLast
	Follow   = follow
)

// ReplayConn connects as the user a replay mints for subject (tests check what it cannot do).
var ReplayConn = replayConn
