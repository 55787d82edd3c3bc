package pushtest

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
)

var b64 = base64.RawURLEncoding

// jwt is a parsed compact JWS.
type jwt struct {
	header map[string]any
	claims map[string]any
	input  string // header.claims, what was signed
	sig    []byte
}

func parseJWT(tok string) (jwt, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return jwt{}, errors.New("not three dot-separated parts")
	}
	var j jwt
	for i, dst := range []*map[string]any{&j.header, &j.claims} {
		raw, err := b64.DecodeString(parts[i])
		if err != nil {
			return jwt{}, errors.New("a part is not base64url without padding")
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return jwt{}, errors.New("a part is not a JSON object")
		}
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return jwt{}, errors.New("the signature is not base64url without padding")
	}
	j.input, j.sig = parts[0]+"."+parts[1], sig
	return j, nil
}

// verifyES256 checks an ES256 signature: r||s, 32 bytes each (not DER).
func (j jwt) verifyES256(pub *ecdsa.PublicKey) error {
	if j.header["alg"] != "ES256" {
		return errors.New("alg is not ES256")
	}
	if len(j.sig) != 64 {
		return errors.New("an ES256 signature is 64 bytes (r||s)")
	}
	digest := sha256.Sum256([]byte(j.input))
	r, s := new(big.Int).SetBytes(j.sig[:32]), new(big.Int).SetBytes(j.sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return errors.New("the ES256 signature does not verify")
	}
	return nil
}

// verifyRS256 checks an RS256 (RSASSA-PKCS1-v1_5 SHA-256) signature.
func (j jwt) verifyRS256(pub *rsa.PublicKey) error {
	if j.header["alg"] != "RS256" {
		return errors.New("alg is not RS256")
	}
	digest := sha256.Sum256([]byte(j.input))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], j.sig); err != nil {
		return errors.New("the RS256 signature does not verify")
	}
	return nil
}

// num reads a numeric claim.
func (j jwt) num(name string) (int64, bool) {
	f, ok := j.claims[name].(float64)
	return int64(f), ok
}

func (j jwt) str(name string) string {
	s, _ := j.claims[name].(string)
	return s
}

// ecdsaFromPoint turns an uncompressed P-256 point into an ECDSA public key.
func ecdsaFromPoint(point []byte) (*ecdsa.PublicKey, error) {
	if _, err := ecdh.P256().NewPublicKey(point); err != nil || len(point) != 65 {
		return nil, errors.New("not an uncompressed P-256 point")
	}
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(point[1:33]), Y: new(big.Int).SetBytes(point[33:])}, nil
}
