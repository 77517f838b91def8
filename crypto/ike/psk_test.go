package ike

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadPSK(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr error
	}{
		{"plain", "mesh secret\n", 0o600, "mesh secret", nil},
		{"group read", "k", 0o640, "", ErrPSKFile},
		{"hex", "0x6b6579\n", 0o400, "key", nil},
		{"base64", "0sa2V5", 0o600, "key", nil},
		{"world readable", "k", 0o644, "", ErrPSKFile},
		{"group writable", "k", 0o660, "", ErrPSKFile},
		{"empty", "\n", 0o600, "", ErrPSKFile},
		{"bad hex", "0xzz", 0o600, "", ErrPSKFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := LoadPSK(p)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err: got %v, want %v", err, tc.wantErr)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := LoadPSK(filepath.Join(dir, "missing")); !errors.Is(err, ErrPSKFile) {
		t.Errorf("missing file: got %v", err)
	}
}
