package main

import (
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vxswitch/vxswitch/crypto/ike"
)

// vxswitch pki: a small site CA with crypto/x509, so that a user can give
// every site its own certificate without openssl. Every file is written
// 0600 and never overwritten.

const pkiUsage = `usage: vxswitch pki <command> [flags]

commands:
  ca -dir DIR [-name NAME] [-type ecdsa|ecdsa384|ed25519|rsa] [-days N]
        make a CA: DIR/ca.pem and DIR/ca.key
  issue -ca DIR -name SITE -ip VTEP[,IP...] [-dns NAME,...] [-type ...] [-days N] -out DIR
        issue a site certificate: OUT/SITE.pem, OUT/SITE.key and OUT/ca.pem
  revoke -ca DIR -cert FILE [-days N]
        add a certificate to the CA's CRL, DIR/crl.pem (re-signed)
  show FILE
        print a certificate (or a CRL)
`

func (c *cli) pki(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, pkiUsage)
		return usagef("a pki command is required")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "ca":
		return c.pkiCA(rest)
	case "issue":
		return c.pkiIssue(rest)
	case "revoke":
		return c.pkiRevoke(rest)
	case "show":
		return c.pkiShow(rest)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, pkiUsage)
		return nil
	default:
		fmt.Fprint(c.stderr, pkiUsage)
		return usagef("unknown pki command %q", cmd)
	}
}

func newPKIKey(kind string) (gocrypto.Signer, error) {
	switch kind {
	case "ecdsa", "ecdsa256", "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, usagef("-type %q: want ecdsa, ecdsa384, ed25519 or rsa", kind)
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// writeNew writes a PEM block to a new file, mode 0600; an existing file
// is an error (a key is never overwritten).
func writeNew(path, typ string, der []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: not overwritten", path)
		}
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeKey(path string, key gocrypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeNew(path, "PRIVATE KEY", der)
}

func (c *cli) pkiCA(args []string) error {
	fs := c.newFlags("pki ca", "-dir DIR [-name NAME] [-type ecdsa|ecdsa384|ed25519|rsa] [-days N]")
	dir := fs.String("dir", "", "directory for ca.pem and ca.key (created)")
	name := fs.String("name", "vxswitch CA", "the CA's common name")
	kind := fs.String("type", "ecdsa", "key type")
	days := fs.Int("days", 3650, "validity in days")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if *dir == "" {
		return usagef("-dir is required")
	}
	key, err := newPKIKey(*kind)
	if err != nil {
		return err
	}
	sn, err := randomSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: *name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, *days),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(*dir, "ca.key"), key); err != nil {
		return err
	}
	if err := writeNew(filepath.Join(*dir, "ca.pem"), "CERTIFICATE", der); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "CA %q: %s, key %s (keep it off the sites)\n", *name, filepath.Join(*dir, "ca.pem"), filepath.Join(*dir, "ca.key"))
	return nil
}

// loadCA reads DIR/ca.pem and DIR/ca.key.
func loadCA(dir string) (*x509.Certificate, gocrypto.Signer, error) {
	certs, err := ike.LoadCertificates(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, nil, err
	}
	key, err := ike.LoadPrivateKey(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, nil, err
	}
	return certs[0], key, nil
}

func (c *cli) pkiIssue(args []string) error {
	fs := c.newFlags("pki issue", "-ca DIR -name SITE -ip VTEP[,IP...] [-dns NAME,...] [-type ...] [-days N] -out DIR")
	caDir := fs.String("ca", "", "the CA's directory (ca.pem, ca.key)")
	name := fs.String("name", "", "the site's name (common name, and the file names)")
	ips := fs.String("ip", "", "IP SANs, comma-separated: the site's VTEP address first (peers check it)")
	dns := fs.String("dns", "", "DNS SANs, comma-separated (default: the site name)")
	kind := fs.String("type", "ecdsa", "key type")
	days := fs.Int("days", 825, "validity in days")
	out := fs.String("out", "", "directory for SITE.pem, SITE.key and ca.pem (created)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if *caDir == "" || *name == "" || *ips == "" || *out == "" {
		return usagef("-ca, -name, -ip and -out are required")
	}
	if strings.ContainsAny(*name, "/\\") {
		return usagef("-name %q: no path separators", *name)
	}
	caCert, caKey, err := loadCA(*caDir)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: *name}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(0, 0, *days)}
	for _, s := range strings.Split(*ips, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return usagef("-ip %q: %v", s, err)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.Unmap().AsSlice()))
	}
	tmpl.DNSNames = []string{*name}
	if *dns != "" {
		tmpl.DNSNames = strings.Split(*dns, ",")
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return err
	}
	key, err := newPKIKey(*kind)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	keyPath, certPath := filepath.Join(*out, *name+".key"), filepath.Join(*out, *name+".pem")
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	if err := writeNew(certPath, "CERTIFICATE", der); err != nil {
		return err
	}
	if caPath := filepath.Join(*out, "ca.pem"); filepath.Clean(*out) != filepath.Clean(*caDir) {
		if err := writeNew(caPath, "CERTIFICATE", caCert.Raw); err != nil && !strings.Contains(err.Error(), "exists") {
			return err
		}
	}
	fmt.Fprintf(c.stdout, "certificate for %s (IP %s): %s, key %s\n", *name, *ips, certPath, keyPath)
	return nil
}

func (c *cli) pkiRevoke(args []string) error {
	flags := c.newFlags("pki revoke", "-ca DIR -cert FILE [-days N]")
	caDir := flags.String("ca", "", "the CA's directory (ca.pem, ca.key; the CRL goes to crl.pem)")
	certFile := flags.String("cert", "", "the certificate to revoke")
	days := flags.Int("days", 30, "days until the CRL's next update")
	if err := flags.Parse(args); err != nil {
		return flagError(err)
	}
	if *caDir == "" || *certFile == "" {
		return usagef("-ca and -cert are required")
	}
	caCert, caKey, err := loadCA(*caDir)
	if err != nil {
		return err
	}
	certs, err := ike.LoadCertificates(*certFile)
	if err != nil {
		return err
	}
	if err := certs[0].CheckSignatureFrom(caCert); err != nil {
		return fmt.Errorf("%s was not issued by this CA: %w", *certFile, err)
	}
	crlPath := filepath.Join(*caDir, "crl.pem")
	tmpl := &x509.RevocationList{Number: big.NewInt(1)}
	if old, err := ike.LoadCRLs(crlPath); err == nil && len(old) > 0 {
		tmpl.RevokedCertificateEntries = old[0].RevokedCertificateEntries
		tmpl.Number = new(big.Int).Add(old[0].Number, big.NewInt(1))
	} else if !errors.Is(err, fs.ErrNotExist) && err != nil {
		return err
	}
	now := time.Now()
	tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: certs[0].SerialNumber, RevocationTime: now})
	tmpl.ThisUpdate, tmpl.NextUpdate = now, now.AddDate(0, 0, *days)
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, caCert, caKey)
	if err != nil {
		return err
	}
	tmp := crlPath + ".new"
	os.Remove(tmp)
	if err := writeNew(tmp, "X509 CRL", der); err != nil {
		return err
	}
	if err := os.Rename(tmp, crlPath); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "revoked %q (serial %s): %s, %d entries; copy it to every site's crl_file and send SIGHUP\n",
		certs[0].Subject.String(), certs[0].SerialNumber, crlPath, len(tmpl.RevokedCertificateEntries))
	return nil
}

func (c *cli) pkiShow(args []string) error {
	if len(args) != 1 {
		return usagef("pki show FILE")
	}
	if certs, err := ike.LoadCertificates(args[0]); err == nil {
		for _, x := range certs {
			printCert(c, x)
		}
		return nil
	}
	crls, err := ike.LoadCRLs(args[0])
	if err != nil {
		return fmt.Errorf("%s is neither a PEM certificate nor a CRL: %w", args[0], err)
	}
	for _, crl := range crls {
		fmt.Fprintf(c.stdout, "CRL issuer:  %s\nnumber:      %s\nthis update: %s\nnext update: %s\n", crl.Issuer.String(), crl.Number,
			crl.ThisUpdate.UTC().Format(time.RFC3339), crl.NextUpdate.UTC().Format(time.RFC3339))
		for _, e := range crl.RevokedCertificateEntries {
			fmt.Fprintf(c.stdout, "  revoked serial %s at %s\n", e.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func printCert(c *cli, x *x509.Certificate) {
	fp := sha256.Sum256(x.Raw)
	var ips []string
	for _, ip := range x.IPAddresses {
		ips = append(ips, ip.String())
	}
	state := "valid"
	if now := time.Now(); now.After(x.NotAfter) {
		state = "EXPIRED"
	} else if now.Before(x.NotBefore) {
		state = "not yet valid"
	}
	fmt.Fprintf(c.stdout, "subject:     %s\nissuer:      %s\nserial:      %s\nvalid:       %s to %s (%s)\nCA:          %v\nIP SANs:     %s\nDNS SANs:    %s\nkey:         %s\nsha256:      %x\n\n",
		x.Subject.String(), x.Issuer.String(), x.SerialNumber,
		x.NotBefore.UTC().Format(time.RFC3339), x.NotAfter.UTC().Format(time.RFC3339), state, x.IsCA,
		strings.Join(ips, ", "), strings.Join(x.DNSNames, ", "), keyType(x.PublicKey), fp)
}

func keyType(k any) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", k)
}
