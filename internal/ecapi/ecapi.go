// Package ecapi holds the ElastiCache API as Go types, generated from the AWS service
// model kept in model/: input and output shapes with their wire names, error kinds
// with their codes and HTTP statuses, and the list of operations.
package ecapi

//go:generate go run ./gen

// Operation describes one action of the model.
type Operation struct {
	Name          string
	Input         string   // input shape name
	Output        string   // output shape name; "" when the action returns no result
	ResultWrapper string   // element wrapping the result in the response
	Errors        []string // error shape names the model lists for it
}
