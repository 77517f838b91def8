package main

import (
	"bytes"
	"crypto/x509"
	"path/filepath"
	"time"

	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/dataplane"
)

// auth validates how esp mode authenticates: [security] auth, the mesh
// psk_file or the certificate files (ca_file, cert_file, key_file,
// crl_file), and the identity.
func (v *validator) auth(sec *securitySection, d *dataplane.Config, listenOK bool) {
	switch sec.Auth {
	case "", "psk":
		if d.IKE.LocalID == "" && listenOK {
			if d.Listen.IsUnspecified() {
				v.errorf("security.local_id", "required in esp mode when site.listen is the unspecified address %s", d.Listen)
			} else {
				d.IKE.LocalID = d.Listen.String()
			}
		}
		if sec.PSKFile == "" {
			if !v.everyPeerHasPSK {
				v.errorf("security.psk_file", "required in esp mode with auth = \"psk\" (unless every [[peer]] has its own psk_file; or use auth = \"certificate\")")
			}
			return
		}
		d.IKE.PSK = v.psk("security.psk_file", sec.PSKFile)
	case "certificate":
		// The identity defaults to the VTEP address, which the certificate
		// must carry; peers that have their own psk_file use the listen
		// address as with auth = "psk".
		for _, k := range []struct{ key, val string }{{"security.ca_file", sec.CAFile}, {"security.cert_file", sec.CertFile}, {"security.key_file", sec.KeyFile}} {
			if k.val == "" {
				v.errorf(k.key, "required with auth = \"certificate\"")
			}
		}
		if sec.PSKFile != "" {
			v.errorf("security.psk_file", "not used with auth = \"certificate\" (a [[peer]] may still have its own psk_file)")
		}
		if sec.CAFile == "" || sec.CertFile == "" || sec.KeyFile == "" {
			return
		}
		d.IKE.Credentials = v.credentials(sec, d)
	default:
		v.errorf("security.auth", "%q: want \"psk\" or \"certificate\"", sec.Auth)
	}
}

// credentials loads and checks the certificate files.
func (v *validator) credentials(sec *securitySection, d *dataplane.Config) *ike.Credentials {
	for _, f := range []struct{ key, file string }{{"security.cert_file", sec.CertFile}, {"security.key_file", sec.KeyFile},
		{"security.ca_file", sec.CAFile}, {"security.crl_file", sec.CRLFile}} {
		if f.file != "" {
			v.checkFile(f.key, v.path(f.file))
		}
	}
	chain, err := ike.LoadCertificates(v.path(sec.CertFile))
	if err != nil {
		v.errorf("security.cert_file", "%v", err)
	}
	key, err2 := ike.LoadPrivateKey(v.path(sec.KeyFile))
	if err2 != nil {
		v.errorf("security.key_file", "%v", err2)
	}
	cas, err3 := ike.LoadCertificates(v.path(sec.CAFile))
	if err3 != nil {
		v.errorf("security.ca_file", "%v", err3)
	}
	var crls []*x509.RevocationList
	if sec.CRLFile != "" {
		var err error
		if crls, err = ike.LoadCRLs(v.path(sec.CRLFile)); err != nil {
			v.errorf("security.crl_file", "%v", err)
			return nil
		}
	}
	if err != nil || err2 != nil || err3 != nil {
		return nil
	}
	creds, err := ike.NewCredentials(chain, key, cas, crls)
	if err != nil {
		v.errorf("security.key_file", "%v", err)
		return nil
	}
	if err := creds.CheckOwn(d.VTEP, d.IKE.LocalID, time.Now()); err != nil {
		v.errorf("security.cert_file", "%v", err)
		return nil
	}
	return creds
}

// secret reads a file only its owner may read (key names the setting) and
// returns its contents and resolved path; nil after an error.
func (v *validator) secret(key, file string) ([]byte, string) {
	path := v.path(file)
	v.checkFile(key, path)
	data, mode, err := v.readPSK(path)
	if err != nil {
		v.errorf(key, "%v", err)
		return nil, path
	}
	if perm := mode.Perm(); perm&0o077 != 0 {
		v.errorf(key, "%s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
		return nil, path
	}
	return data, path
}

// psk reads and checks a PSK file (key names the setting).
func (v *validator) psk(key, file string) []byte {
	data, path := v.secret(key, file)
	if data == nil {
		return nil
	}
	psk := bytes.TrimSuffix(data, []byte("\n"))
	psk = bytes.TrimSuffix(psk, []byte("\r"))
	if len(psk) < minPSKLen {
		v.errorf(key, "%s holds %d bytes, a PSK needs at least %d", path, len(psk), minPSKLen)
		return nil
	}
	return psk
}

// path resolves a file name relative to the configuration's directory.
func (v *validator) path(p string) string {
	if !filepath.IsAbs(p) && v.baseDir != "" {
		return filepath.Join(v.baseDir, p)
	}
	return p
}
