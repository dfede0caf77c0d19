package cluster

import (
	"context"
	"strings"
	"sync"
)

// Watcher receives the committed changes under one prefix, in commit order,
// exactly once. Its queue is unbounded so that applying the log never waits
// for a slow watcher; a watcher that is never drained grows without limit,
// so owners must keep calling Next or Close it.
//
// A Watcher is safe for use by one consumer goroutine plus Close from any.
type Watcher struct {
	prefix string
	hub    *watchHub

	mu     sync.Mutex // guards queue and closed
	queue  []Event
	closed bool
	notify chan struct{} // capacity 1: "queue may be non-empty"
}

// Next blocks until at least one event is queued, then returns all queued
// events. It returns ctx.Err() when ctx ends and ErrClosed after Close.
func (w *Watcher) Next(ctx context.Context) ([]Event, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return nil, ErrClosed
		}
		if len(w.queue) > 0 {
			evs := w.queue
			w.queue = nil
			w.mu.Unlock()
			return evs, nil
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.notify:
		}
	}
}

// Close stops the watcher; it is idempotent.
func (w *Watcher) Close() {
	w.hub.remove(w)
	w.mu.Lock()
	w.closed = true
	w.queue = nil
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *Watcher) push(evs []Event) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.queue = append(w.queue, evs...)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// watchHub fans committed events out to watchers. Callers serialise add and
// dispatch with the FSM's apply lock, so a watcher registered together with a
// state listing misses nothing and sees nothing twice.
type watchHub struct {
	mu       sync.Mutex // guards watchers
	watchers map[*Watcher]struct{}
}

func newWatchHub() *watchHub { return &watchHub{watchers: make(map[*Watcher]struct{})} }

func (h *watchHub) add(prefix string) *Watcher {
	w := &Watcher{prefix: prefix, hub: h, notify: make(chan struct{}, 1)}
	h.mu.Lock()
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	return w
}

func (h *watchHub) remove(w *Watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
}

// dispatch delivers evs to every watcher whose prefix matches. Reset events
// go to every watcher.
func (h *watchHub) dispatch(evs []Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		var mine []Event
		for _, e := range evs {
			if e.Type == EventReset || strings.HasPrefix(e.Key, w.prefix) {
				mine = append(mine, e)
			}
		}
		if len(mine) > 0 {
			w.push(mine)
		}
	}
}
