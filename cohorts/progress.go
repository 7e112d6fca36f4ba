package cohorts

import "io"

// ProgressFunc receives an import's progress: bytes of input read so far and
// the total (-1 if unknown). The CLI draws a progress bar with it.
type ProgressFunc func(done, total int64)

// progressEvery is how many bytes pass between progress calls.
const progressEvery = 256 << 10

// progress counts the bytes an import reads across its input files.
type progress struct {
	fn         ProgressFunc
	done, last int64
	total      int64
}

func newProgress(fn ProgressFunc, total int64) *progress {
	p := &progress{fn: fn, total: total}
	p.report()
	return p
}

func (p *progress) add(n int64) {
	p.done += n
	if p.done-p.last >= progressEvery {
		p.report()
	}
}

func (p *progress) report() {
	p.last = p.done
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
}

// finish reports the final count.
func (p *progress) finish() {
	if p.last != p.done || p.done == 0 {
		p.report()
	}
}

// reader wraps r so that what is read from it counts.
func (p *progress) reader(r io.Reader) io.Reader { return &progressReader{r: r, p: p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(int64(n))
	return n, err
}
