package push

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Message encryption for Web Push (RFC 8291) in the aes128gcm content
// coding (RFC 8188), as one record:
//
//	salt (16) | rs (uint32) | idlen (1) = 65 | keyid = the sender's ephemeral
//	public key (65) | AES-128-GCM(plaintext | 0x02 | zero padding) with its tag

const (
	eceRecordSize = 4096
	eceHeaderLen  = 16 + 4 + 1 + 65
	eceTagLen     = 16
	// padBlock rounds the padded plaintext up so that its length says less
	// about what it holds (a display name, a count).
	padBlock = 64
)

// MaxPlaintext is the largest payload one record carries.
const MaxPlaintext = eceRecordSize - eceTagLen - 1

// encrypt seals plaintext for the user agent whose public key (an
// uncompressed P-256 point) and authentication secret are given, with a
// fresh ephemeral key and salt.
func encrypt(plaintext, uaPublic, authSecret []byte) ([]byte, error) {
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	pad := 0
	if n := len(plaintext) + 1; n%padBlock != 0 {
		pad = min(padBlock-n%padBlock, MaxPlaintext-len(plaintext))
	}
	return encryptWith(as, salt, plaintext, uaPublic, authSecret, pad)
}

// encryptWith is encrypt with the ephemeral key, the salt and the padding
// given (the RFC's example fixes them).
func encryptWith(as *ecdh.PrivateKey, salt, plaintext, uaPublic, authSecret []byte, pad int) ([]byte, error) {
	if len(plaintext)+pad > MaxPlaintext || pad < 0 {
		return nil, errors.New("push: payload too large for one record")
	}
	if len(salt) != 16 || len(authSecret) != 16 {
		return nil, errors.New("push: salt and auth secret must be 16 bytes")
	}
	ua, err := ecdh.P256().NewPublicKey(uaPublic)
	if err != nil {
		return nil, err
	}
	shared, err := as.ECDH(ua)
	if err != nil {
		return nil, err
	}
	asPublic := as.PublicKey().Bytes()
	// IKM = HKDF(salt=auth_secret, ikm=ecdh_secret, info="WebPush: info" 0x00 ua_public as_public)
	keyInfo := "WebPush: info\x00" + string(uaPublic) + string(asPublic)
	ikm, err := hkdf.Key(sha256.New, shared, authSecret, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	record := make([]byte, len(plaintext)+1+pad)
	copy(record, plaintext)
	record[len(plaintext)] = 0x02 // the last (only) record's delimiter

	out := make([]byte, eceHeaderLen, eceHeaderLen+len(record)+eceTagLen)
	copy(out, salt)
	binary.BigEndian.PutUint32(out[16:], eceRecordSize)
	out[20] = byte(len(asPublic))
	copy(out[21:], asPublic)
	return gcm.Seal(out, nonce, record, nil), nil
}
