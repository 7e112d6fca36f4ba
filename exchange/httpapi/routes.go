package httpapi

import (
	"net/http"

	"github.com/medx/medx/ledger"
)

// Roles, short, for the table.
const (
	patient  = ledger.RolePatient
	sponsor  = ledger.RoleSponsor
	board    = ledger.RoleEthicsBoard
	custod   = ledger.RoleCustodian
	operator = ledger.RoleOperator
)

var anyRole = []ledger.Role{patient, sponsor, board, custod, operator}

func roles(rs ...ledger.Role) []ledger.Role { return rs }

// routes is every route of the API, one line each, with the roles it
// allows. Public routes need no token.
func (s *Server) routes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{method: get, pattern: "/healthz", public: true, h: handleHealth()},
		{method: get, pattern: "/metrics", public: true, h: s.handleMetrics()},
		{method: get, pattern: "/openapi.json", public: true, h: handleOpenAPI()},
		{method: get, pattern: "/", public: true, h: handleUI("index.html", "text/html; charset=utf-8")},
		{method: get, pattern: "/ui/app.js", public: true, h: handleUI("app.js", "text/javascript; charset=utf-8")},
		{method: get, pattern: "/ui/app.css", public: true, h: handleUI("app.css", "text/css; charset=utf-8")},
		{method: get, pattern: "/v1/me", roles: anyRole, h: handleMe()},
		{method: get, pattern: "/v1/participants", roles: roles(sponsor, board, custod, operator), h: s.handleParticipants()},
		{method: post, pattern: "/v1/participants", roles: roles(operator), h: s.handleRegister()},
		{method: get, pattern: "/v1/participants/{id}", roles: anyRole, h: s.handleParticipant()},
		{method: get, pattern: "/v1/requests", roles: anyRole, h: s.handleRequests()},
		{method: post, pattern: "/v1/requests", roles: roles(sponsor), h: s.handlePostRequest()},
		{method: get, pattern: "/v1/requests/{id}", roles: anyRole, h: s.handleRequest()},
		{method: post, pattern: "/v1/requests/{id}/approve", roles: roles(board), h: s.handleApprove()},
		{method: post, pattern: "/v1/requests/{id}/reject", roles: roles(board), h: s.handleDecision(decisionReject)},
		{method: post, pattern: "/v1/requests/{id}/halt", roles: roles(board), h: s.handleDecision(decisionHalt)},
		{method: post, pattern: "/v1/requests/{id}/close", roles: roles(sponsor), h: s.handleDecision(decisionClose)},
		{method: get, pattern: "/v1/requests/{id}/feasibility", roles: roles(sponsor, board), h: s.handleFeasibilityRecords()},
		{method: post, pattern: "/v1/requests/{id}/feasibility", roles: roles(sponsor), h: s.handleRequestFeasibility()},
		{method: post, pattern: "/v1/feasibility", roles: roles(sponsor), h: s.handleFeasibility()},
		{method: get, pattern: "/v1/requests/{id}/queries", roles: roles(sponsor, board, operator), h: s.handleQueryRecords()},
		{method: post, pattern: "/v1/requests/{id}/queries", roles: roles(sponsor), h: s.handleQuery()},
		{method: post, pattern: "/v1/requests/{id}/notebook-runs", roles: roles(sponsor), h: s.handleNotebookRun()},
		{method: get, pattern: "/v1/notebook-runs/{id}", roles: roles(sponsor, board, operator), h: s.handleGetNotebookRun()},
		{method: post, pattern: "/v1/requests/{id}/certificate", roles: roles(patient), h: s.handleCertificate()},
		{method: post, pattern: "/v1/requests/{id}/accept", roles: roles(patient), h: s.handlePatientAction(actAccept)},
		{method: post, pattern: "/v1/requests/{id}/decline", roles: roles(patient), h: s.handleDecline()},
		{method: get, pattern: "/v1/offers", roles: roles(patient), h: s.handleOffers()},
		{method: get, pattern: "/v1/licences", roles: roles(patient), h: s.handleLicences()},
		{method: post, pattern: "/v1/licences/{id}/revoke", roles: roles(patient), h: s.handlePatientAction(actRevoke)},
		{method: get, pattern: "/v1/accesses", roles: roles(patient), h: s.handleAccesses()},
		{method: get, pattern: "/v1/tokens/balance", roles: anyRole, h: s.handleBalance()},
		{method: get, pattern: "/v1/tokens/supply", roles: roles(board, operator), h: s.handleSupply()},
		{method: post, pattern: "/v1/tokens/mint", roles: roles(operator), h: s.handleMint()},
		{method: get, pattern: "/v1/audit/trail", roles: roles(board, operator), h: s.handleTrail()},
		{method: get, pattern: "/v1/audit/summary", roles: roles(board, operator), h: s.handleAuditSummary()},
		{method: get, pattern: "/v1/events", roles: anyRole, h: s.handleEvents()},
		{method: get, pattern: "/v1/tokens/history", roles: anyRole, h: s.handleTokenHistory()},
		{method: get, pattern: "/v1/audit/export", roles: roles(board, operator), h: s.handleAuditExport()},
		{method: post, pattern: "/v1/criteria/validate", roles: roles(sponsor, board), h: handleValidateCriteria()},
		{method: post, pattern: "/v1/custodial-sponsor-key", roles: roles(sponsor), h: s.handleCustodialSponsorKey()},
		{method: post, pattern: "/v1/requests/{id}/custodial-queries", roles: roles(sponsor), h: s.handleCustodialQuery()},
	}
}
