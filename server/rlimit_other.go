//go:build !unix

package server

import "errors"

// RaiseOpenFiles is not supported here.
func RaiseOpenFiles() (uint64, error) { return 0, errors.ErrUnsupported }
