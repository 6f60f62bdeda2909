package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/hoardcache/hoard/internal/api"
)

const defaultAccountID = "000000000000"

// storedCredentials is the key pair hoard generated on its first start, kept in
// <data-dir>/credentials.json (mode 0600).
type storedCredentials struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

var accountIDPattern = regexp.MustCompile(`^\d{12}$`)

// loadCredentials returns the root key pair of the default account: from
// HOARD_ACCESS_KEY_ID / HOARD_SECRET_ACCESS_KEY when set, else the pair stored in
// the data dir, else a new pair that is stored and printed once to out.
func loadCredentials(dataDir string, out io.Writer) (api.KeyRing, error) {
	account := os.Getenv("HOARD_ACCOUNT_ID")
	if account == "" {
		account = defaultAccountID
	}
	if !accountIDPattern.MatchString(account) {
		return nil, fmt.Errorf("HOARD_ACCOUNT_ID must be 12 digits, got %q", account)
	}
	id, secret := os.Getenv("HOARD_ACCESS_KEY_ID"), os.Getenv("HOARD_SECRET_ACCESS_KEY")
	if (id == "") != (secret == "") {
		return nil, errors.New("set both HOARD_ACCESS_KEY_ID and HOARD_SECRET_ACCESS_KEY, or neither")
	}
	if id == "" {
		stored, err := storedOrNewCredentials(filepath.Join(dataDir, "credentials.json"), out)
		if err != nil {
			return nil, err
		}
		id, secret = stored.AccessKeyID, stored.SecretAccessKey
	}
	return api.KeyRing{id: {AccessKeyID: id, Secret: secret, Account: account}}, nil
}

func storedOrNewCredentials(path string, out io.Writer) (*storedCredentials, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		var c storedCredentials
		if err := json.Unmarshal(raw, &c); err != nil || c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return nil, fmt.Errorf("%s is not a valid credentials file", path)
		}
		return &c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	c := &storedCredentials{AccessKeyID: "HK" + randomString(18, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
		SecretAccessKey: randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
	raw, _ = json.MarshalIndent(c, "", "  ")
	// Write then rename, so that a crash never leaves a half-written key file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "hoard generated credentials for the default account (kept in %s):\n  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n",
		path, c.AccessKeyID, c.SecretAccessKey)
	return c, nil
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
