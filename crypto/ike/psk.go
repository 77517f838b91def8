package ike

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// ErrPSKFile is wrapped by LoadPSK for files it refuses.
var ErrPSKFile = errors.New("ike: unusable PSK file")

// LoadPSK reads a pre-shared key file. It refuses a file that group or
// others may read or write (as the binary's own check does): the key
// protects every SA of the mesh. The content is the key itself, with
// trailing white space removed; as in strongSwan's secrets, a "0x" prefix
// means hex and "0s" base64.
func LoadPSK(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPSKFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPSKFile, err)
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o: group and others must have no access (chmod 600)", ErrPSKFile, path, m)
	}
	b := make([]byte, 0, 256)
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil || len(b) > 64<<10 {
			break
		}
	}
	b = bytes.TrimRight(b, " \t\r\n")
	switch {
	case bytes.HasPrefix(b, []byte("0x")):
		k, err := hex.DecodeString(string(b[2:]))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: bad hex", ErrPSKFile, path)
		}
		b = k
	case bytes.HasPrefix(b, []byte("0s")):
		k, err := base64.StdEncoding.DecodeString(string(b[2:]))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: bad base64", ErrPSKFile, path)
		}
		b = k
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrPSKFile, path)
	}
	return b, nil
}
