package push

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

var b64 = base64.RawURLEncoding

// signJWT returns header.claims.signature (RFC 7515 compact form) signed
// with ES256 (an ECDSA P-256 key; the signature is r||s, 64 bytes) or RS256
// (an RSA key, PKCS #1 v1.5), as header["alg"] says.
func signJWT(key crypto.Signer, header, claims map[string]any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return "", err
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:]); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("push: cannot sign a JWT with a %T", key)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// parsePKCS8 reads the first PEM block of raw as a PKCS #8 private key.
func parsePKCS8(raw []byte, what string) (crypto.Signer, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", what)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T cannot sign", what, key)
	}
	return signer, nil
}

// readKeyFile reads a PKCS #8 PEM key file.
func readKeyFile(path, what string) (crypto.Signer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return parsePKCS8(raw, what)
}

// ecP256 returns key as a P-256 ECDSA key.
func ecP256(key crypto.Signer, what string) (*ecdsa.PrivateKey, error) {
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Curve.Params().Name != "P-256" {
		return nil, errors.New(what + ": not an ECDSA P-256 key")
	}
	return k, nil
}
