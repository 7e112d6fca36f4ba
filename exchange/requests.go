package exchange

import (
	"context"
	"fmt"
	"sync"

	"github.com/medx/medx/ledger"
)

// heighted is a ledger backend that says how many blocks it committed
// (the embedded ledger does).
type heighted interface{ Height() uint64 }

// requestsAt is the list of requests as of one ledger height. The list
// only changes with a new block, so while the height stays the same it is
// the ledger's own answer, not a copy that can go stale: every
// acknowledged write has raised the height first.
type requestsAt struct {
	mu     sync.Mutex
	height uint64
	list   []ledger.Request
}

// allRequests lists every request, from the ledger or, when the backend
// reports its height and no block was committed since, from the list read
// at that height. Callers must not modify the result.
func (ex *Exchange) allRequests(ctx context.Context) ([]ledger.Request, error) {
	hb, ok := ex.led.Backend().(heighted)
	if !ok {
		return ex.listRequests(ctx)
	}
	h := hb.Height() // before the read: the list is at least this new
	ex.reqs.mu.Lock()
	if ex.reqs.list != nil && ex.reqs.height == h {
		list := ex.reqs.list
		ex.reqs.mu.Unlock()
		return list, nil
	}
	ex.reqs.mu.Unlock()
	list, err := ex.listRequests(ctx)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []ledger.Request{}
	}
	ex.reqs.mu.Lock()
	if h >= ex.reqs.height {
		ex.reqs.height, ex.reqs.list = h, list
	}
	ex.reqs.mu.Unlock()
	return list, nil
}

func (ex *Exchange) listRequests(ctx context.Context) ([]ledger.Request, error) {
	reqs, err := ex.led.Requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return reqs, nil
}
