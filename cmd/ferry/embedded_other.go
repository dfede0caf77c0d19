//go:build !linux

package main

import (
	"context"
	"errors"
	"time"
)

// errNoEmbedded is returned where ferry cannot run WireGuard itself yet.
var errNoEmbedded = errors.New("ferry runs its embedded WireGuard on Linux only: install WireGuard (wg-quick) and run ferry up again")

func runEmbedded(context.Context, embeddedOptions) error { return errNoEmbedded }

func startDaemon(string, string, bool) error { return errNoEmbedded }

func stopDaemon(string, time.Duration) (bool, error) { return false, nil }

func tunnelCarried(string) (carried, error) { return carried{}, nil }
