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
type Invokes struct{ contractapi.Contract }

// Queries is the QueryContract: the read-only functions.
type Queries struct{ contractapi.Contract }

// GetEvaluateTransactions marks every query as an evaluate transaction in the metadata.
func (*Queries) GetEvaluateTransactions() []string { return ledger.QueryFunctions() }

// Bootstrap runs ledger.FnBootstrap.
func (*Invokes) Bootstrap(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnBootstrap)
}

// RegisterParticipant runs ledger.FnRegisterParticipant.
func (*Invokes) RegisterParticipant(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnRegisterParticipant)
}

// Mint runs ledger.FnMint.
func (*Invokes) Mint(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnMint)
}

// Transfer runs ledger.FnTransfer.
func (*Invokes) Transfer(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnTransfer)
}

// PostRequest runs ledger.FnPostRequest.
func (*Invokes) PostRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnPostRequest)
}

// ApproveRequest runs ledger.FnApproveRequest.
func (*Invokes) ApproveRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnApproveRequest)
}

// RejectRequest runs ledger.FnRejectRequest.
func (*Invokes) RejectRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnRejectRequest)
}

// HaltRequest runs ledger.FnHaltRequest.
func (*Invokes) HaltRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnHaltRequest)
}

// CloseRequest runs ledger.FnCloseRequest.
func (*Invokes) CloseRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnCloseRequest)
}

// ExpireRequest runs ledger.FnExpireRequest.
func (*Invokes) ExpireRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnExpireRequest)
}

// AcceptOffer runs ledger.FnAcceptOffer.
func (*Invokes) AcceptOffer(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnAcceptOffer)
}

// RevokeLicence runs ledger.FnRevokeLicence.
func (*Invokes) RevokeLicence(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnRevokeLicence)
}

// AuthorizeQuery runs ledger.FnAuthorizeQuery.
func (*Invokes) AuthorizeQuery(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnAuthorizeQuery)
}

// CompleteQuery runs ledger.FnCompleteQuery.
func (*Invokes) CompleteQuery(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnCompleteQuery)
}

// RecordNotebookRun runs ledger.FnRecordNotebookRun.
func (*Invokes) RecordNotebookRun(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnRecordNotebookRun)
}

// RegisterDataset runs ledger.FnRegisterDataset.
func (*Invokes) RegisterDataset(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnRegisterDataset)
}

// GetParticipant runs ledger.FnGetParticipant.
func (*Queries) GetParticipant(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnGetParticipant)
}

// ListParticipants runs ledger.FnListParticipants.
func (*Queries) ListParticipants(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListParticipants)
}

// GetRequest runs ledger.FnGetRequest.
func (*Queries) GetRequest(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnGetRequest)
}

// ListRequests runs ledger.FnListRequests.
func (*Queries) ListRequests(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListRequests)
}

// GetLicence runs ledger.FnGetLicence.
func (*Queries) GetLicence(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnGetLicence)
}

// ListLicences runs ledger.FnListLicences.
func (*Queries) ListLicences(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListLicences)
}

// ListPatientLicences runs ledger.FnListPatientLicences.
func (*Queries) ListPatientLicences(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListPatientLicences)
}

// ListLicenceQueries runs ledger.FnListLicenceQueries.
func (*Queries) ListLicenceQueries(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListLicenceQueries)
}

// Balance runs ledger.FnBalance.
func (*Queries) Balance(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnBalance)
}

// TokenSummary runs ledger.FnTokenSummary.
func (*Queries) TokenSummary(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnTokenSummary)
}

// GetQuery runs ledger.FnGetQuery.
func (*Queries) GetQuery(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnGetQuery)
}

// ListQueries runs ledger.FnListQueries.
func (*Queries) ListQueries(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListQueries)
}

// GetNotebookRun runs ledger.FnGetNotebookRun.
func (*Queries) GetNotebookRun(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnGetNotebookRun)
}

// GetDataset runs ledger.FnGetDataset.
func (*Queries) GetDataset(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnGetDataset)
}

// ListDatasets runs ledger.FnListDatasets.
func (*Queries) ListDatasets(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListDatasets)
}

// AskFeasibility runs ledger.FnAskFeasibility.
func (*Invokes) AskFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnAskFeasibility)
}

// CompleteFeasibility runs ledger.FnCompleteFeasibility.
func (*Invokes) CompleteFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return invoke(ctx, ledger.FnCompleteFeasibility)
}

// GetFeasibility runs ledger.FnGetFeasibility.
func (*Queries) GetFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnGetFeasibility)
}

// ListFeasibility runs ledger.FnListFeasibility.
func (*Queries) ListFeasibility(ctx contractapi.TransactionContextInterface) (string, error) {
	return query(ctx, ledger.FnListFeasibility)
}
