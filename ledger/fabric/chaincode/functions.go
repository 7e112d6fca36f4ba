package chaincode

import (
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/medx/medx/ledger"
)

// One method per contract function: contractapi routes by method name and
// lists the methods in the chaincode's metadata. The arguments are read raw
// from the stub, so that the contract sees exactly the bytes sent (one
// signed action, or JSON ids) and refuses a wrong count itself.

// Invokes is the default contract: the state-changing functions.
type Invokes struct {
	contractapi.Contract
	ct ledger.Contract // from ledger.NewContract, shared with Queries
}

// Queries is the QueryContract: the read-only functions.
type Queries struct {
	contractapi.Contract
	ct ledger.Contract
}

// GetEvaluateTransactions marks every query as an evaluate transaction in the metadata.
func (*Queries) GetEvaluateTransactions() []string { return ledger.QueryFunctions() }

// Bootstrap runs ledger.FnBootstrap.
func (c *Invokes) Bootstrap(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnBootstrap)
}

// RegisterParticipant runs ledger.FnRegisterParticipant.
func (c *Invokes) RegisterParticipant(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnRegisterParticipant)
}

// Mint runs ledger.FnMint.
func (c *Invokes) Mint(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnMint)
}

// Transfer runs ledger.FnTransfer.
func (c *Invokes) Transfer(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnTransfer)
}

// PostRequest runs ledger.FnPostRequest.
func (c *Invokes) PostRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnPostRequest)
}

// ApproveRequest runs ledger.FnApproveRequest.
func (c *Invokes) ApproveRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnApproveRequest)
}

// RejectRequest runs ledger.FnRejectRequest.
func (c *Invokes) RejectRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnRejectRequest)
}

// HaltRequest runs ledger.FnHaltRequest.
func (c *Invokes) HaltRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnHaltRequest)
}

// CloseRequest runs ledger.FnCloseRequest.
func (c *Invokes) CloseRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnCloseRequest)
}

// ExpireRequest runs ledger.FnExpireRequest.
func (c *Invokes) ExpireRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnExpireRequest)
}

// AcceptOffer runs ledger.FnAcceptOffer.
func (c *Invokes) AcceptOffer(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnAcceptOffer)
}

// RevokeLicence runs ledger.FnRevokeLicence.
func (c *Invokes) RevokeLicence(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnRevokeLicence)
}

// AuthorizeQuery runs ledger.FnAuthorizeQuery.
func (c *Invokes) AuthorizeQuery(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnAuthorizeQuery)
}

// CompleteQuery runs ledger.FnCompleteQuery.
func (c *Invokes) CompleteQuery(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnCompleteQuery)
}

// RecordNotebookRun runs ledger.FnRecordNotebookRun.
func (c *Invokes) RecordNotebookRun(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnRecordNotebookRun)
}

// RegisterDataset runs ledger.FnRegisterDataset.
func (c *Invokes) RegisterDataset(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnRegisterDataset)
}

// GetParticipant runs ledger.FnGetParticipant.
func (c *Queries) GetParticipant(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnGetParticipant)
}

// ListParticipants runs ledger.FnListParticipants.
func (c *Queries) ListParticipants(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListParticipants)
}

// GetRequest runs ledger.FnGetRequest.
func (c *Queries) GetRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnGetRequest)
}

// ListRequests runs ledger.FnListRequests.
func (c *Queries) ListRequests(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListRequests)
}

// GetLicence runs ledger.FnGetLicence.
func (c *Queries) GetLicence(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnGetLicence)
}

// ListLicences runs ledger.FnListLicences.
func (c *Queries) ListLicences(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListLicences)
}

// ListPatientLicences runs ledger.FnListPatientLicences.
func (c *Queries) ListPatientLicences(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListPatientLicences)
}

// ListLicenceQueries runs ledger.FnListLicenceQueries.
func (c *Queries) ListLicenceQueries(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListLicenceQueries)
}

// Balance runs ledger.FnBalance.
func (c *Queries) Balance(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnBalance)
}

// TokenSummary runs ledger.FnTokenSummary.
func (c *Queries) TokenSummary(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnTokenSummary)
}

// GetQuery runs ledger.FnGetQuery.
func (c *Queries) GetQuery(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnGetQuery)
}

// ListQueries runs ledger.FnListQueries.
func (c *Queries) ListQueries(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListQueries)
}

// GetNotebookRun runs ledger.FnGetNotebookRun.
func (c *Queries) GetNotebookRun(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnGetNotebookRun)
}

// GetDataset runs ledger.FnGetDataset.
func (c *Queries) GetDataset(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnGetDataset)
}

// ListDatasets runs ledger.FnListDatasets.
func (c *Queries) ListDatasets(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListDatasets)
}

// AskFeasibility runs ledger.FnAskFeasibility.
func (c *Invokes) AskFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnAskFeasibility)
}

// CompleteFeasibility runs ledger.FnCompleteFeasibility.
func (c *Invokes) CompleteFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, c.ct, ledger.FnCompleteFeasibility)
}

// GetFeasibility runs ledger.FnGetFeasibility.
func (c *Queries) GetFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnGetFeasibility)
}

// ListFeasibility runs ledger.FnListFeasibility.
func (c *Queries) ListFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, c.ct, ledger.FnListFeasibility)
}
