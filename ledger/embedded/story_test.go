package embedded

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/ledgertest"
)

// story is a ledger with a study's whole life on it.
type story struct {
	path  string
	clock *ledgertest.Clock
	w     cast

	study, rejected, closed ledger.Request
	licences                []ledger.Licence
	patients                []ledger.Signer
	query                   ledger.QueryAuthorization
	dataset                 ledger.Dataset
}

func storyStart() time.Time { return time.Date(2031, 5, 1, 8, 0, 0, 0, time.UTC) }

// pnSigner is the per-study key of patient i in request r.
func pnSigner(r ledger.RequestID, i int) ledger.Signer {
	pn := ledger.Signer{Key: testKey(fmt.Sprintf("pn/%s/%d", r, i))}
	pn.ID = ledger.PseudonymID(pn.Public())
	return pn
}

// newStory builds, on a ledger at path, a study with a deadline that four
// patients join (one revokes), a query, a rejected and a closed request,
// a dataset, and finally the study's expiry. The ledger is left open.
func newStory(t *testing.T, path string) (*Ledger, *story) {
	t.Helper()
	ctx := t.Context()
	s := &story{path: path, clock: ledgertest.NewClock(storyStart())}
	l := openAt(t, path, testKey("node"), s.clock.Now)
	s.w = newCast(t, l)
	c := s.w.c
	d := ledger.RequestDraft{
		Title: "HbA1c", Purpose: "glycaemic control", Criteria: "age > 40", Scope: []string{"demographics", "labs"},
		RewardPerPatient: 7, MaxParticipants: 10, LicenceSeconds: 90 * 24 * 3600, RecruitUntil: storyStart().Add(30 * 24 * time.Hour),
	}
	var err error
	if s.study, err = c.PostRequest(ctx, s.w.sponsor, d); err != nil {
		t.Fatal(err)
	}
	if s.study, err = c.ApproveRequest(ctx, s.w.board, s.study.ID, ledger.ApprovalTerms{MinCell: 3, EpsilonBudget: 2_000_000}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		s.clock.Advance(time.Hour)
		lic, err := s.w.accept(ctx, s.study, i)
		if err != nil {
			t.Fatal(err)
		}
		s.licences = append(s.licences, lic)
		s.patients = append(s.patients, pnSigner(s.study.ID, i))
	}
	s.clock.Advance(24 * time.Hour)
	if _, err := c.RevokeLicence(ctx, s.patients[1], s.licences[1].ID); err != nil {
		t.Fatal(err)
	}
	if s.query, err = c.AuthorizeQuery(ctx, s.w.sponsor, ledger.QueryDraft{Request: s.study.ID, QueryHash: strings.Repeat("ab", 32), Categories: []string{"labs"}, Epsilon: 250_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteQuery(ctx, s.w.op, ledger.QueryCompletion{Query: s.query.Query.ID, ResultHash: strings.Repeat("cd", 32)}); err != nil {
		t.Fatal(err)
	}
	d.RecruitUntil = time.Time{}
	if s.rejected, err = c.PostRequest(ctx, s.w.sponsor, d); err != nil {
		t.Fatal(err)
	}
	if s.rejected, err = c.RejectRequest(ctx, s.w.board, s.rejected.ID, "no"); err != nil {
		t.Fatal(err)
	}
	if s.closed, err = c.PostRequest(ctx, s.w.sponsor, d); err != nil {
		t.Fatal(err)
	}
	if s.closed, err = c.CloseRequest(ctx, s.w.sponsor, s.closed.ID, "changed plans"); err != nil {
		t.Fatal(err)
	}
	if s.dataset, err = c.RegisterDataset(ctx, s.w.cust, ledger.DatasetManifest{ContentHash: strings.Repeat("ef", 32), SchemaHash: strings.Repeat("01", 32), Rows: 1000, RefDate: "2031-01-01", Location: "s3://st-marys/cohort"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Transfer(ctx, s.patients[0], s.w.cust.ID, 2); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(30 * 24 * time.Hour)
	if s.study, err = c.ExpireRequest(ctx, s.w.board, s.study.ID); err != nil {
		t.Fatal(err)
	}
	return l, s
}

// copyFile copies src to a new file in a temporary directory.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), "copy.db")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}
