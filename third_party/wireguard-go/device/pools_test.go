/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

func TestWaitPool(t *testing.T) {
	t.Skip("Currently disabled")
	var wg sync.WaitGroup
	var trials atomic.Int32
	startTrials := int32(100000)
	if raceEnabled {
		// This test can be very slow with -race.
		startTrials /= 10
	}
	trials.Store(startTrials)
	workers := runtime.NumCPU() + 2
	if workers-4 <= 0 {
		t.Skip("Not enough cores")
	}
	p := NewWaitPool(uint32(workers-4), func() any { return make([]byte, 16) })
	wg.Add(workers)
	var max atomic.Uint32
	updateMax := func() {
		p.lock.Lock()
		count := p.count
		p.lock.Unlock()
		if count > p.max {
			t.Errorf("count (%d) > max (%d)", count, p.max)
		}
		for {
			old := max.Load()
			if count <= old {
				break
			}
			if max.CompareAndSwap(old, count) {
				break
			}
		}
	}
	for i := 0; i < workers; i++ {
		go func() {
			defer wg.Done()
			for trials.Add(-1) > 0 {
				updateMax()
				x := p.Get()
				updateMax()
				time.Sleep(time.Duration(rand.Intn(100)) * time.Microsecond)
				updateMax()
				p.Put(x)
				updateMax()
			}
		}()
	}
	wg.Wait()
	if max.Load() != p.max {
		t.Errorf("Actual maximum count (%d) != ideal maximum count (%d)", max, p.max)
	}
}

func BenchmarkWaitPool(b *testing.B) {
	var wg sync.WaitGroup
	var trials atomic.Int32
	trials.Store(int32(b.N))
	workers := runtime.NumCPU() + 2
	if workers-4 <= 0 {
		b.Skip("Not enough cores")
	}
	p := NewWaitPool(uint32(workers-4), func() any { return make([]byte, 16) })
	wg.Add(workers)
	b.ResetTimer()
	for i := 0; i < workers; i++ {
		go func() {
			defer wg.Done()
			for trials.Add(-1) > 0 {
				x := p.Get()
				time.Sleep(time.Duration(rand.Intn(100)) * time.Microsecond)
				p.Put(x)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkWaitPoolEmpty(b *testing.B) {
	var wg sync.WaitGroup
	var trials atomic.Int32
	trials.Store(int32(b.N))
	workers := runtime.NumCPU() + 2
	if workers-4 <= 0 {
		b.Skip("Not enough cores")
	}
	p := NewWaitPool(0, func() any { return make([]byte, 16) })
	wg.Add(workers)
	b.ResetTimer()
	for i := 0; i < workers; i++ {
		go func() {
			defer wg.Done()
			for trials.Add(-1) > 0 {
				x := p.Get()
				time.Sleep(time.Duration(rand.Intn(100)) * time.Microsecond)
				p.Put(x)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkSyncPool(b *testing.B) {
	var wg sync.WaitGroup
	var trials atomic.Int32
	trials.Store(int32(b.N))
	workers := runtime.NumCPU() + 2
	if workers-4 <= 0 {
		b.Skip("Not enough cores")
	}
	p := sync.Pool{New: func() any { return make([]byte, 16) }}
	wg.Add(workers)
	b.ResetTimer()
	for i := 0; i < workers; i++ {
		go func() {
			defer wg.Done()
			for trials.Add(-1) > 0 {
				x := p.Get()
				time.Sleep(time.Duration(rand.Intn(100)) * time.Microsecond)
				p.Put(x)
			}
		}()
	}
	wg.Wait()
}

// TestWaitPoolKeepsItems checks ferry's change: a bounded pool allocates at
// most max items over its life, however many garbage collections pass
// while its items are back in it.
func TestWaitPoolKeepsItems(t *testing.T) {
	var allocs atomic.Uint32
	p := NewWaitPool(8, func() any { allocs.Add(1); return new([64]byte) })
	for round := 0; round < 3; round++ {
		var held []any
		for i := 0; i < 8; i++ {
			held = append(held, p.Get())
		}
		for _, x := range held {
			p.Put(x)
		}
		runtime.GC()
		runtime.GC()
	}
	if n := allocs.Load(); n > 8 {
		t.Errorf("allocated %d items, want at most 8", n)
	}
}

// TestWaitPoolTryGet checks that TryGet never waits on a bounded pool.
func TestWaitPoolTryGet(t *testing.T) {
	p := NewWaitPool(2, func() any { return new(int) })
	a, okA := p.TryGet()
	_, okB := p.TryGet()
	if !okA || !okB {
		t.Fatal("TryGet failed below the limit")
	}
	if _, ok := p.TryGet(); ok {
		t.Fatal("TryGet beyond the limit succeeded")
	}
	p.Put(a)
	if x, ok := p.TryGet(); !ok || x != a {
		t.Fatalf("TryGet after a Put: %v %v, want the returned item", x, ok)
	}
}

// TestBoundedDeviceKeepaliveDoesNotWait checks that the keepalive
// RoutineHandshake sends cannot wait for a buffer when the pools are
// exhausted: it holds buffers that only it returns.
func TestBoundedDeviceKeepaliveDoesNotWait(t *testing.T) {
	tn := tuntest.NewChannelTUN()
	binds := bindtest.NewChannelBinds()
	dev := NewDeviceWithPoolLimit(tn.TUN(), binds[0], NewLogger(LogLevelSilent, ""), 512)
	defer dev.Close()
	var held []*[MaxMessageSize]byte
	for {
		x, ok := dev.pool.messageBuffers.TryGet()
		if !ok {
			break
		}
		held = append(held, x.(*[MaxMessageSize]byte))
	}
	done := make(chan *QueueOutboundElement)
	go func() { done <- dev.tryNewOutboundElement() }()
	if elem := <-done; elem != nil {
		t.Fatal("got an element from an exhausted pool")
	}
	dev.PutMessageBuffer(held[0])
	if elem := dev.tryNewOutboundElement(); elem == nil {
		t.Fatal("no element after a buffer came back")
	}
}
