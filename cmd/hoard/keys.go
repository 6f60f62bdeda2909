package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/hoardcache/hoard/internal/keyring"
	"github.com/hoardcache/hoard/internal/service"
)

const keysUsage = `Usage:
  hoard keys create [--data-dir DIR] [--alias alias/NAME] [--description TEXT]
  hoard keys list   [--data-dir DIR]

hoard keeps snapshot encryption keys (its stand-in for KMS) in <data-dir>/keyring.json.
A snapshot created with a KmsKeyId naming one of them (key id, key ARN, alias or alias
ARN) is stored encrypted under it. A running hoard sees new keys at once.
`

// keyringPath is where a data dir keeps its keyring.
func keyringPath(dataDir string) string { return filepath.Join(dataDir, "keyring.json") }

// keys runs `hoard keys ...`.
func keys(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(keysUsage)
		return nil
	}
	if args[0] != "create" && args[0] != "list" {
		return fmt.Errorf("unknown keys command %q\n\n%s", args[0], keysUsage)
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, keysUsage) }
	dataDir := fs.String("data-dir", defaultDataDir(), "hoard's data directory")
	alias := fs.String("alias", "", "alias of the new key: alias/NAME")
	description := fs.String("description", "", "description of the new key")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	ring, err := keyring.Open(keyringPath(*dataDir))
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		k, err := ring.Create(*alias, *description)
		if err != nil {
			return err
		}
		// A KmsKeyId may name the key by id, alias, or an ARN of any region.
		account := os.Getenv("HOARD_ACCOUNT_ID")
		if account == "" {
			account = defaultAccountID
		}
		fmt.Printf("KeyId: %s\nArn:   %s\n", k.ID, k.ARN("us-east-1", account))
		if k.Alias != "" {
			fmt.Printf("Alias: %s\n", k.Alias)
		}
		return nil
	case "list":
		list, err := ring.List()
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KEY ID\tALIAS\tCREATED\tDESCRIPTION")
		for _, k := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.ID, k.Alias, k.CreatedAt.Format("2006-01-02T15:04:05Z"), k.Description)
		}
		return w.Flush()
	}
	return nil
}

// serviceKeys adapts the keyring to what the service needs of it.
type serviceKeys struct{ *keyring.Keyring }

var _ service.Keys = serviceKeys{}

func (k serviceKeys) Resolve(ref string) (string, error) {
	key, err := k.Lookup(ref)
	return key.ID, err
}
