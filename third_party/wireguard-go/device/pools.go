/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"sync"
)

type WaitPool struct {
	pool  sync.Pool
	cond  sync.Cond
	lock  sync.Mutex
	count uint32 // Get calls not yet Put back
	max   uint32
	// free holds returned items when max is set: a bounded pool keeps
	// what it allocated (at most max items) instead of leaving it to
	// sync.Pool, which drops items at each garbage collection and so makes
	// the device allocate (and zero) fresh buffers while the dropped ones
	// wait for the next collection.
	free []any
	new  func() any
}

func NewWaitPool(max uint32, new func() any) *WaitPool {
	p := &WaitPool{pool: sync.Pool{New: new}, max: max, new: new}
	p.cond = sync.Cond{L: &p.lock}
	return p
}

func (p *WaitPool) Get() any {
	if p.max == 0 {
		return p.pool.Get()
	}
	p.lock.Lock()
	defer p.lock.Unlock()
	for p.count >= p.max {
		p.cond.Wait()
	}
	p.count++
	if n := len(p.free); n > 0 {
		x := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return x
	}
	return p.new()
}

// TryGet is Get that does not wait: on a bounded pool with max items out
// it returns false. Routines that free the pools' items use it, so they
// never wait for items only they can return.
func (p *WaitPool) TryGet() (any, bool) {
	if p.max == 0 {
		return p.pool.Get(), true
	}
	p.lock.Lock()
	defer p.lock.Unlock()
	if p.count >= p.max {
		return nil, false
	}
	p.count++
	if n := len(p.free); n > 0 {
		x := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return x, true
	}
	return p.new(), true
}

func (p *WaitPool) Put(x any) {
	if p.max == 0 {
		p.pool.Put(x)
		return
	}
	p.lock.Lock()
	defer p.lock.Unlock()
	p.free = append(p.free, x)
	p.count--
	p.cond.Signal()
}

func (device *Device) PopulatePools() {
	limit := device.poolLimit
	device.pool.inboundElementsContainer = NewWaitPool(limit, func() any {
		s := make([]*QueueInboundElement, 0, device.BatchSize())
		return &QueueInboundElementsContainer{elems: s}
	})
	device.pool.outboundElementsContainer = NewWaitPool(limit, func() any {
		s := make([]*QueueOutboundElement, 0, device.BatchSize())
		return &QueueOutboundElementsContainer{elems: s}
	})
	device.pool.messageBuffers = NewWaitPool(limit, func() any {
		return new([MaxMessageSize]byte)
	})
	device.pool.inboundElements = NewWaitPool(limit, func() any {
		return new(QueueInboundElement)
	})
	device.pool.outboundElements = NewWaitPool(limit, func() any {
		return new(QueueOutboundElement)
	})
}

func (device *Device) GetInboundElementsContainer() *QueueInboundElementsContainer {
	c := device.pool.inboundElementsContainer.Get().(*QueueInboundElementsContainer)
	c.Mutex = sync.Mutex{}
	return c
}

func (device *Device) PutInboundElementsContainer(c *QueueInboundElementsContainer) {
	for i := range c.elems {
		c.elems[i] = nil
	}
	c.elems = c.elems[:0]
	device.pool.inboundElementsContainer.Put(c)
}

func (device *Device) GetOutboundElementsContainer() *QueueOutboundElementsContainer {
	c := device.pool.outboundElementsContainer.Get().(*QueueOutboundElementsContainer)
	c.Mutex = sync.Mutex{}
	return c
}

func (device *Device) PutOutboundElementsContainer(c *QueueOutboundElementsContainer) {
	for i := range c.elems {
		c.elems[i] = nil
	}
	c.elems = c.elems[:0]
	device.pool.outboundElementsContainer.Put(c)
}

func (device *Device) GetMessageBuffer() *[MaxMessageSize]byte {
	return device.pool.messageBuffers.Get().(*[MaxMessageSize]byte)
}

func (device *Device) PutMessageBuffer(msg *[MaxMessageSize]byte) {
	device.pool.messageBuffers.Put(msg)
}

func (device *Device) GetInboundElement() *QueueInboundElement {
	return device.pool.inboundElements.Get().(*QueueInboundElement)
}

func (device *Device) PutInboundElement(elem *QueueInboundElement) {
	elem.clearPointers()
	device.pool.inboundElements.Put(elem)
}

func (device *Device) GetOutboundElement() *QueueOutboundElement {
	return device.pool.outboundElements.Get().(*QueueOutboundElement)
}

func (device *Device) PutOutboundElement(elem *QueueOutboundElement) {
	elem.clearPointers()
	device.pool.outboundElements.Put(elem)
}
