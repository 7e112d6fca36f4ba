package embedded

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

// collect reads events until one at height to (or the channel closes).
func collect(t *testing.T, evs <-chan BlockEvent, to uint64) []BlockEvent {
	t.Helper()
	var out []BlockEvent
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return out
			}
			out = append(out, ev)
			if ev.Height >= to {
				return out
			}
		case <-timeout:
			t.Fatalf("no event at height %d after %d events", to, len(out))
		}
	}
}

// consecutive fails unless evs run from height from without gaps or
// repeats.
func consecutive(t *testing.T, evs []BlockEvent, from uint64) {
	t.Helper()
	for i, ev := range evs {
		if ev.Height != from+uint64(i) {
			t.Fatalf("event %d is for block %d, want %d", i, ev.Height, from+uint64(i))
		}
		if ev.Hash == "" || len(ev.Txs) == 0 {
			t.Errorf("event for block %d lacks its hash or transactions", ev.Height)
		}
	}
}

// TestEventsResume consumes events, stops, restarts the ledger, and
// resumes from the next height: nothing is missed or repeated, and the
// events carry what the exchange needs to notify patients.
func TestEventsResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, s := newStory(t, path)
	head := l.Height()
	ctx, cancel := context.WithCancel(t.Context())
	first := collect(t, l.Events(ctx, 0), head/2)
	cancel()
	consecutive(t, first, 1)
	last := first[len(first)-1].Height
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The subscriber restarts later, the ledger restarts, and more happens.
	l2 := openAt(t, path, testKey("node"), s.clock.Now)
	w := s.w
	w.c = ledger.NewClient(l2)
	r := w.openStudy(t, 10)
	lic, err := w.accept(t.Context(), r, 1)
	if err != nil {
		t.Fatal(err)
	}
	qa, err := w.c.AuthorizeQuery(t.Context(), w.sponsor, ledger.QueryDraft{Request: r.ID, QueryHash: strings.Repeat("12", 32), Epsilon: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.CompleteQuery(t.Context(), w.op, ledger.QueryCompletion{Query: qa.Query.ID, ResultHash: strings.Repeat("34", 32)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.RevokeLicence(t.Context(), pnSigner(r.ID, 1), lic.ID); err != nil {
		t.Fatal(err)
	}
	rest := collect(t, l2.Events(t.Context(), last+1), l2.Height())
	consecutive(t, rest, last+1)
	if got := rest[len(rest)-1].Height; got != l2.Height() {
		t.Fatalf("resumed events end at %d, want the head %d", got, l2.Height())
	}

	// The events name licences, pseudonyms and queries, never names.
	byName := map[string]ledger.EventPayload{}
	var authorized TxEvent
	for _, ev := range append(first, rest...) {
		for _, tx := range ev.Txs {
			if tx.Event == nil {
				continue
			}
			if strings.Contains(string(tx.Event.Payload), "Raw Name") {
				t.Errorf("event %s carries a participant's name: %s", tx.Event.Name, tx.Event.Payload)
			}
			var p ledger.EventPayload
			if err := json.Unmarshal(tx.Event.Payload, &p); err != nil {
				t.Fatal(err)
			}
			byName[tx.Event.Name] = p
			if tx.Event.Name == ledger.EventQueryAuthorized && p.Query == qa.Query.ID {
				authorized = tx
			}
		}
	}
	for _, name := range []string{ledger.EventLicenceGranted, ledger.EventLicenceRevoked, ledger.EventQueryAuthorized,
		ledger.EventQueryCompleted, ledger.EventDatasetRegistered, ledger.EventRequestExpired} {
		if _, ok := byName[name]; !ok {
			t.Errorf("no %s event among %d blocks", name, len(first)+len(rest))
		}
	}
	if p := byName[ledger.EventLicenceRevoked]; p.Licence != lic.ID || p.Patient != lic.Patient {
		t.Errorf("revocation event %+v, want licence %s of %s", p, lic.ID, lic.Patient)
	}
	for _, name := range []string{ledger.EventQueryAuthorized, ledger.EventQueryCompleted} {
		if p := byName[name]; p.Query != qa.Query.ID || p.LicencesDigest != qa.Query.LicencesDigest || p.Licences != 1 {
			t.Errorf("%s event %+v, want query %s with licences digest %s", name, p, qa.Query.ID, qa.Query.LicencesDigest)
		}
	}
	if len(authorized.Licences) != 1 || authorized.Licences[0].Licence != lic.ID || authorized.Licences[0].Patient != lic.Patient {
		t.Errorf("query_authorized event lists licences %+v, want just %s of %s", authorized.Licences, lic.ID, lic.Patient)
	}
}

// TestEventsWhileCommitting subscribes from the first block while
// transactions commit concurrently: the replayed and the live events join
// without a gap or a repeat.
func TestEventsWhileCommitting(t *testing.T) {
	l := openAt(t, filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), nil)
	w := newCast(t, l)
	var wg sync.WaitGroup
	started := make(chan (<-chan BlockEvent), 1)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 50 {
				// A subscription taken while blocks commit.
				started <- l.Events(t.Context(), 2)
			}
			if err := w.c.Transfer(t.Context(), w.sponsor, w.cust.ID, 1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mid := <-started
	evs := collect(t, mid, l.Height())
	consecutive(t, evs, 2)
	txs := 0
	for _, ev := range evs {
		txs += len(ev.Txs)
	}
	if want := int(l.Height()) - 1; len(evs) != want {
		t.Errorf("%d events from block 2 to %d, want %d", len(evs), l.Height(), want)
	}
	if txs != 200+4 { // the transfers, three registrations and the mint
		t.Errorf("events carry %d transactions, want 204", txs)
	}

	// A subscription from beyond the head waits for that block.
	from := l.Height() + 2
	ahead := l.Events(t.Context(), from)
	for range 3 {
		if err := w.c.Transfer(t.Context(), w.sponsor, w.cust.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	if ev := <-ahead; ev.Height != from {
		t.Errorf("Events(%d) began with block %d", from, ev.Height)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range ahead { // closed with the ledger
	}
}
