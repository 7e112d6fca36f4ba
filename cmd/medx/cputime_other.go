//go:build !linux

package main

import "time"

// threadCPU cannot tell on this platform; callers fall back to wall time.
func threadCPU() (time.Duration, bool) { return 0, false }
