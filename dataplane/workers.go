package dataplane

import (
	"runtime"
	"sync"
)

// rangeFunc processes items [lo, hi) of a batch.
type rangeFunc func(lo, hi int)

type job struct {
	fn     rangeFunc
	lo, hi int
	wg     *sync.WaitGroup
}

// workerPool runs the crypto of one batch on every core: the batch is
// split into contiguous ranges, the caller takes one range itself, and Run
// returns when all are done, so the caller sends the batch in its
// original order and per-peer order holds. Nothing allocates per batch:
// callers pass a rangeFunc they built once.
type workerPool struct {
	jobs    chan job
	workers int
	stop    chan struct{}
}

func newWorkerPool(workers int) *workerPool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
		if workers < 4 {
			workers = 1
		}
	}
	p := &workerPool{jobs: make(chan job, 4*workers), workers: workers, stop: make(chan struct{})}
	for i := 1; i < workers; i++ {
		go p.loop()
	}
	return p
}

func (p *workerPool) loop() {
	for {
		select {
		case j := <-p.jobs:
			j.fn(j.lo, j.hi)
			j.wg.Done()
		case <-p.stop:
			return
		}
	}
}

// Close stops the workers.
func (p *workerPool) Close() { close(p.stop) }

// Run calls fn over [0, n) split across the pool when the batch carries
// enough work (weight, e.g. bytes) to pay for the hand-off, else inline.
func (p *workerPool) Run(n, weight int, wg *sync.WaitGroup, fn rangeFunc) {
	const minWeight = 16 << 10
	parts := p.workers
	if parts > n {
		parts = n
	}
	if p.workers <= 1 || n < 2 || weight < minWeight {
		fn(0, n)
		return
	}
	step := (n + parts - 1) / parts
	for lo := step; lo < n; lo += step {
		wg.Add(1)
		p.jobs <- job{fn: fn, lo: lo, hi: min(lo+step, n), wg: wg}
	}
	fn(0, min(step, n))
	wg.Wait()
}
