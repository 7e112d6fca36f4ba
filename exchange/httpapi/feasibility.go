package httpapi

import (
	"net/http"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
)

// feasibilityResponse is a released feasibility count with what was
// applied to it; answer says it in words ("about 120 patients match
// (discrete-laplace noise of scale 2; counts under 10 withheld ...)").
type feasibilityResponse struct {
	Criteria       string                   `json:"criteria"`
	Count          int64                    `json:"count"`
	BelowThreshold bool                     `json:"belowThreshold"`
	Threshold      int64                    `json:"threshold"`
	Rounding       int64                    `json:"rounding"`
	Mechanism      string                   `json:"mechanism"`
	NoiseScale     float64                  `json:"noiseScale"`
	EpsilonSpent   float64                  `json:"epsilonSpent"`
	EpsilonLeft    float64                  `json:"epsilonLeft"`
	AsksLeft       int                      `json:"asksLeft"`
	Cached         bool                     `json:"cached"`
	Answer         string                   `json:"answer"`
	Record         ledger.FeasibilityRecord `json:"record"`
}

func feasibilityOut(f *exchange.Feasibility) feasibilityResponse {
	return feasibilityResponse{
		Criteria: f.Criteria, Count: f.Count, BelowThreshold: f.BelowThreshold, Threshold: f.Threshold, Rounding: f.Rounding,
		Mechanism: f.Mechanism, NoiseScale: f.NoiseScale, EpsilonSpent: f.EpsilonSpent, EpsilonLeft: f.EpsilonLeft,
		AsksLeft: f.AsksLeft, Cached: f.Cached, Answer: f.String(), Record: f.Record,
	}
}

// feasibilityReply is feasibilityOut of what an exchange method returns.
func feasibilityReply(f *exchange.Feasibility, err error) (feasibilityResponse, error) {
	if err != nil {
		return feasibilityResponse{}, err
	}
	return feasibilityOut(f), nil
}

// handleFeasibility counts, before posting, the patients across custodians
// who meet the body's criteria.
func (s *Server) handleFeasibility() handler {
	type request struct {
		Criteria string `json:"criteria"`
	}
	return signed(s, http.StatusOK, func(r *http.Request, sg ledger.Signer, req request) (feasibilityResponse, error) {
		return feasibilityReply(s.ex.Feasibility(r.Context(), sg, req.Criteria))
	})
}

// handleRequestFeasibility counts the patients who meet the criteria of
// the sponsor's own request.
func (s *Server) handleRequestFeasibility() handler {
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) (feasibilityResponse, error) {
		sg, err := s.signer(p)
		if err != nil {
			return feasibilityResponse{}, err
		}
		if _, err := s.ex.Request(r.Context(), p, requestID(r)); err != nil {
			return feasibilityResponse{}, err // another sponsor's request is not found, as on GET
		}
		return feasibilityReply(s.ex.RequestFeasibility(r.Context(), sg, requestID(r)))
	})
}

// handleFeasibilityRecords lists the counts released for a request's
// criteria, for its sponsor and ethics boards.
func (s *Server) handleFeasibilityRecords() handler {
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) ([]feasibilityResponse, error) {
		fs, err := s.ex.FeasibilityRecords(r.Context(), p, requestID(r))
		if err != nil {
			return nil, err
		}
		out := make([]feasibilityResponse, len(fs))
		for i, f := range fs {
			out[i] = feasibilityOut(f)
		}
		return out, nil
	})
}
