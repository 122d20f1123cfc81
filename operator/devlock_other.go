//go:build !unix

package operator

import (
	"errors"
	"os"
)

func tryLock(*os.File) (bool, error) {
	return false, errors.New("the dev server lock needs a Unix system")
}

func unlock(*os.File) {}
