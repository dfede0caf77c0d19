package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// The caps are cluster configuration: one JSON Caps stored under keyCaps,
// read by every node at capture time (by the node that runs a capture and
// by every node serving its part), so nodes cannot disagree. A node's
// configured Caps are a bootstrap: ImportCaps stores them once when the
// cluster has none, and a node uses them only until then.
const keyCaps = "capture/caps"

// Bounds of the caps an administrator may set.
const (
	maxCapDuration   = 24 * time.Hour
	maxCapBytes      = int64(1) << 40
	maxCapConcurrent = 64
)

// Validate checks the caps, naming the first bad field.
func (c *Caps) Validate() error {
	switch {
	case c.MaxDuration < time.Second || c.MaxDuration > maxCapDuration:
		return fmt.Errorf("%w: max_duration %s: want 1s to %s", ErrInvalid, c.MaxDuration, maxCapDuration)
	case c.MaxBytes <= 0 || c.MaxBytes > maxCapBytes:
		return fmt.Errorf("%w: max_bytes %d: want 1 to %d", ErrInvalid, c.MaxBytes, maxCapBytes)
	case c.MaxConcurrent < 1 || c.MaxConcurrent > maxCapConcurrent:
		return fmt.Errorf("%w: max_concurrent %d: want 1 to %d", ErrInvalid, c.MaxConcurrent, maxCapConcurrent)
	case c.HeaderSnaplen < 1 || c.HeaderSnaplen > 65535:
		return fmt.Errorf("%w: header_snaplen %d: want 1 to 65535", ErrInvalid, c.HeaderSnaplen)
	}
	return nil
}

// Caps returns the cluster's caps: those stored, or this node's
// configured ones while the cluster has none.
func (s *Service) Caps(ctx context.Context) (Caps, error) {
	c, _, err := s.storedCaps(ctx)
	return c, err
}

// storedCaps reads the caps and their version (0: none stored).
func (s *Service) storedCaps(ctx context.Context) (Caps, uint64, error) {
	kv, ok, err := s.cfg.Node.Get(ctx, keyCaps, cluster.Linearizable)
	if err != nil {
		return Caps{}, 0, fmt.Errorf("reading the capture caps: %w", err)
	}
	if !ok {
		return s.cfg.Caps, 0, nil
	}
	var c Caps
	if err := json.Unmarshal(kv.Value, &c); err != nil {
		return Caps{}, 0, fmt.Errorf("reading the capture caps: %w", err)
	}
	c.setDefaults()
	return c, kv.Version, nil
}

// ImportCaps stores this node's configured caps unless the cluster has
// caps: the configuration file is a bootstrap, the cluster the truth
// afterwards. It reports whether it stored them.
func (s *Service) ImportCaps(ctx context.Context) (bool, error) {
	if err := s.cfg.Caps.Validate(); err != nil {
		return false, err
	}
	b, err := json.Marshal(s.cfg.Caps)
	if err != nil {
		return false, err
	}
	res, err := s.cfg.Node.Txn(ctx, cluster.Txn{
		Compares: []cluster.Compare{cluster.IfAbsent(keyCaps)},
		Ops:      []cluster.Op{cluster.Put(keyCaps, b)},
	})
	if err != nil {
		return false, fmt.Errorf("storing the capture caps: %w", err)
	}
	return res.Succeeded, nil
}

// CapsChange is an administrator's change of the cluster's caps; nil
// fields stay as they are.
type CapsChange struct {
	Actor  audit.Actor
	Source audit.Source
	// Admin reports whether the requester's session has the admin role.
	Admin bool
	// TOTP is the requester's fresh code: raising caps widens access.
	TOTP          string
	MaxDuration   *time.Duration
	MaxBytes      *int64
	MaxConcurrent *int
	AllowPayload  *bool
}

func (ch CapsChange) apply(c Caps) Caps {
	if ch.MaxDuration != nil {
		c.MaxDuration = *ch.MaxDuration
	}
	if ch.MaxBytes != nil {
		c.MaxBytes = *ch.MaxBytes
	}
	if ch.MaxConcurrent != nil {
		c.MaxConcurrent = *ch.MaxConcurrent
	}
	if ch.AllowPayload != nil {
		c.AllowPayload = *ch.AllowPayload
	}
	return c
}

// SetCaps changes the cluster's caps. It needs the admin role and a fresh
// TOTP code, as a capture does; the change and every refusal are audit
// events (capture.limits).
func (s *Service) SetCaps(ctx context.Context, ch CapsChange) (Caps, error) {
	ev := audit.Event{Type: audit.TypeAdmin, Action: "capture.limits", Actor: ch.Actor, Source: ch.Source, Outcome: audit.Success,
		Details: map[string]string{}}
	after, err := s.setCaps(ctx, ch, ev)
	if err == nil {
		return after, nil // recorded with the change
	}
	ev.Outcome, ev.Reason, ev.Details = audit.Failure, err.Error(), map[string]string{}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if rerr := s.cfg.Recorder.Record(rctx, ev); rerr != nil {
		s.log.Error("cannot record a change of the capture caps", "err", rerr, "outcome", ev.Outcome)
		if err == nil {
			err = fmt.Errorf("recording the change of the capture caps: %w", rerr)
		}
	}
	return after, err
}

// setCaps makes the change, committing ev (its details filled in) with it.
func (s *Service) setCaps(ctx context.Context, ch CapsChange, ev audit.Event) (Caps, error) {
	if !ch.Admin {
		return Caps{}, ErrForbidden
	}
	if ch.MaxDuration == nil && ch.MaxBytes == nil && ch.MaxConcurrent == nil && ch.AllowPayload == nil {
		return Caps{}, fmt.Errorf("%w: nothing to change", ErrInvalid)
	}
	cur, _, err := s.storedCaps(ctx)
	if err != nil {
		return Caps{}, err
	}
	// Values are checked before the step-up, so a typo does not use a code.
	if next := ch.apply(cur); next.Validate() != nil {
		return Caps{}, next.Validate()
	}
	if ch.TOTP == "" {
		return Caps{}, fmt.Errorf("%w: send the current code of your authenticator", ErrStepUp)
	}
	if err := s.cfg.StepUp(ctx, ch.Actor, ch.Source, ch.TOTP); err != nil {
		return Caps{}, fmt.Errorf("%w: %v", ErrStepUp, err)
	}
	for range maxGrantTries {
		cur, ver, err := s.storedCaps(ctx)
		if err != nil {
			return Caps{}, err
		}
		next := ch.apply(cur)
		if err := next.Validate(); err != nil {
			return Caps{}, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return Caps{}, err
		}
		cmp := cluster.IfAbsent(keyCaps)
		if ver != 0 {
			cmp = cluster.IfVersion(keyCaps, ver)
		}
		ev.Details = map[string]string{}
		capsDetails(ev.Details, "before.", cur)
		capsDetails(ev.Details, "after.", next)
		// The change and its record commit together or not at all.
		res, err := audit.Commit(ctx, s.cfg.Node, s.cfg.Recorder, cluster.Txn{Compares: []cluster.Compare{cmp}, Ops: []cluster.Op{cluster.Put(keyCaps, b)}}, ev)
		if err != nil {
			return Caps{}, fmt.Errorf("storing the capture caps: %w", err)
		}
		if res.Succeeded {
			s.log.Info("capture caps changed", "actor", ch.Actor.Email, "caps", next)
			return next, nil
		}
	}
	return Caps{}, fmt.Errorf("%w: the caps kept changing; try again", ErrBusy)
}

func capsDetails(d map[string]string, prefix string, c Caps) {
	d[prefix+"max_duration"] = c.MaxDuration.String()
	d[prefix+"max_bytes"] = strconv.FormatInt(c.MaxBytes, 10)
	d[prefix+"max_concurrent"] = strconv.Itoa(c.MaxConcurrent)
	d[prefix+"allow_payload"] = strconv.FormatBool(c.AllowPayload)
	d[prefix+"header_snaplen"] = strconv.Itoa(c.HeaderSnaplen)
}
