package assembly

import (
	"context"
	"time"
)

// Bounds of one housekeeping pass.
const (
	janitorTimeout = 30 * time.Second
	importTimeout  = 30 * time.Second
	importRetry    = time.Second
)

// janitor sweeps, on the leader, expired peers, sessions, identity
// provider token claims and sign-ins, every JanitorInterval.
func (s *Services) janitor(ctx context.Context) {
	node, log := s.cfg.Node, s.cfg.Logger
	t := time.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !node.IsLeader() {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, janitorTimeout)
		sweeps := map[string]func(context.Context) (int, error){"peers": s.Profiles.Sweep, "sessions": s.Sessions.Sweep}
		if s.Signals != nil {
			sweeps["idp token claims"] = s.Signals.Sweep
		}
		if s.Flow != nil {
			sweeps["sign-ins"] = s.Flow.Sweep
		}
		for what, sweep := range sweeps {
			if n, err := sweep(jctx); err != nil {
				log.Warn("janitor failed", "what", what, "err", err)
			} else if n > 0 {
				log.Info("janitor removed old records", "what", what, "count", n)
			}
		}
		cancel()
	}
}

// importSinks stores the configuration file's network sinks in the
// cluster once, on the leader; afterwards the cluster is the truth.
func (s *Services) importSinks(ctx context.Context) {
	node, log := s.cfg.Node, s.cfg.Logger
	t := time.NewTicker(importRetry)
	defer t.Stop()
	for {
		if node.IsLeader() {
			ictx, cancel := context.WithTimeout(ctx, importTimeout)
			n, err := s.SinkStore.ImportOnce(ictx, s.cfg.Audit.NetSinks)
			cancel()
			if err == nil {
				if n > 0 {
					log.Info("imported the configuration file's network audit sinks into the cluster", "count", n)
				}
				return
			}
			log.Warn("importing network audit sinks failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// importCaps stores this node's configured capture caps in the cluster
// once, on the leader, when the cluster has none; afterwards the cluster
// is the truth (ferryctl capture limits).
func (s *Services) importCaps(ctx context.Context) {
	node, log := s.cfg.Node, s.cfg.Logger
	t := time.NewTicker(importRetry)
	defer t.Stop()
	for {
		if node.IsLeader() {
			ictx, cancel := context.WithTimeout(ctx, importTimeout)
			stored, err := s.Capture.ImportCaps(ictx)
			cancel()
			if err == nil {
				if stored {
					log.Info("imported the configuration file's capture caps into the cluster")
				}
				return
			}
			log.Warn("importing the capture caps failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
