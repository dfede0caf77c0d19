// Package reporttest holds test helpers for reports: a journal in memory
// with the cluster's chaining, to fold recorded events into a rollup
// without a cluster.
package reporttest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/cluster"
)

// Journal is an audit journal in memory, chained like the cluster's
// (SHA-256(prev || seq || data)). It is safe for concurrent use.
type Journal struct {
	mu   sync.Mutex // guards recs
	recs []cluster.Record
}

var _ audit.Journal = (*Journal)(nil)

// Add appends events, encoded as JSON.
func (j *Journal) Add(evs ...audit.Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
		var prev [32]byte
		if n := len(j.recs); n > 0 {
			prev = j.recs[n-1].Hash
		}
		seq := uint64(len(j.recs) + 1)
		h := sha256.New()
		h.Write(prev[:])
		h.Write(binary.BigEndian.AppendUint64(nil, seq))
		h.Write(data)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		j.recs = append(j.recs, cluster.Record{Seq: seq, Data: data, PrevHash: prev, Hash: sum})
	}
	return nil
}

// Len returns the number of records.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.recs)
}

// Bytes returns the total size of the records' data.
func (j *Journal) Bytes() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, r := range j.recs {
		n += len(r.Data)
	}
	return n
}

// JournalRange returns the records with from <= seq <= to, at most max.
func (j *Journal) JournalRange(from, to uint64, max int) ([]cluster.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if from < 1 {
		from = 1
	}
	var out []cluster.Record
	for s := from; s <= to && s <= uint64(len(j.recs)) && len(out) < max; s++ {
		out = append(out, j.recs[s-1])
	}
	return out, nil
}

// JournalHead returns the last sequence number and hash.
func (j *Journal) JournalHead() (uint64, [32]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.recs) == 0 {
		return 0, [32]byte{}, nil
	}
	r := j.recs[len(j.recs)-1]
	return r.Seq, r.Hash, nil
}
