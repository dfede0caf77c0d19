package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// batcher groups concurrent writes on the leader into fewer Raft log
// entries. It never waits to fill a batch: it takes whatever is queued while
// Raft is busy with the previous one, so a lone writer pays no extra latency
// and many writers share each disk write.
type batcher struct {
	r  *raft.Raft
	ch chan *proposal
	wg sync.WaitGroup
}

type proposal struct {
	data []byte
	done chan proposalResult // capacity 1
}

type proposalResult struct {
	res interface{}
	err error
}

// Batch limits: entries beyond these go into the next batch.
const (
	maxBatchCommands = 1024
	maxBatchBytes    = 4 << 20
)

func newBatcher(r *raft.Raft) *batcher {
	return &batcher{r: r, ch: make(chan *proposal, maxBatchCommands)}
}

// submit proposes one encoded command and waits for its result. An error
// wrapping ErrNotLeader means the entry was never appended and may be retried
// elsewhere.
func (b *batcher) submit(ctx context.Context, data []byte) (interface{}, error) {
	p := &proposal{data: data, done: make(chan proposalResult, 1)}
	select {
	case b.ch <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrNoQuorum, ctx.Err())
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		// The entry is in flight: it may still commit.
		return nil, fmt.Errorf("%w: %w: %v", ErrNoQuorum, ErrOutcomeUnknown, ctx.Err())
	}
}

func (b *batcher) run(ctx context.Context) {
	defer b.wg.Wait()
	for {
		var first *proposal
		select {
		case <-ctx.Done():
			b.failQueued()
			return
		case first = <-b.ch:
		}
		batch := []*proposal{first}
		size := len(first.data)
	drain:
		for len(batch) < maxBatchCommands && size < maxBatchBytes {
			select {
			case p := <-b.ch:
				batch = append(batch, p)
				size += len(p.data)
			default:
				break drain
			}
		}
		var data []byte
		if len(batch) == 1 {
			data = first.data
		} else {
			raw := make([][]byte, len(batch))
			for i, p := range batch {
				raw[i] = p.data
			}
			data = encodeBatch(raw)
		}
		f := b.r.Apply(data, 5*time.Second)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.finish(ctx, f, batch)
		}()
	}
}

func (b *batcher) finish(ctx context.Context, f raft.ApplyFuture, batch []*proposal) {
	// Raft may never answer a future that was in flight when it shut
	// down, so the node's shutdown must not wait for the answer: the
	// waiting goroutine is left to end whenever Raft answers.
	answered := make(chan error, 1)
	go func() { answered <- f.Error() }()
	var err error
	select {
	case err = <-answered:
	case <-ctx.Done():
		for _, p := range batch {
			p.done <- proposalResult{err: fmt.Errorf("%w: %w", ErrClosed, ErrOutcomeUnknown)}
		}
		return
	}
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
		err = fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		err = fmt.Errorf("%w: %w: %v", ErrNoQuorum, ErrOutcomeUnknown, err)
	case err != nil:
		err = fmt.Errorf("cluster: applying: %w", err)
	}
	if err != nil {
		for _, p := range batch {
			p.done <- proposalResult{err: err}
		}
		return
	}
	resp := f.Response()
	if len(batch) == 1 {
		batch[0].done <- proposalResult{res: resp}
		return
	}
	rs, ok := resp.([]interface{})
	for i, p := range batch {
		if !ok || i >= len(rs) {
			p.done <- proposalResult{err: fmt.Errorf("cluster: batch result %T has no entry %d", resp, i)}
			continue
		}
		p.done <- proposalResult{res: rs[i]}
	}
}

func (b *batcher) failQueued() {
	for {
		select {
		case p := <-b.ch:
			p.done <- proposalResult{err: ErrClosed}
		default:
			return
		}
	}
}
