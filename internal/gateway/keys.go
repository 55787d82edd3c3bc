package gateway

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// decodeKey reads a base64 key (standard or URL alphabet, padded or not).
func decodeKey(field, s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, fmt.Errorf("%w: %s is not valid base64", chat.ErrBadRequest, field)
}

func encodeKey(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// keysFromWire decodes an upload; missing fields and bad base64 are 400.
func keysFromWire(in proto.KeysUpload) (chat.DeviceKeys, error) {
	var k chat.DeviceKeys
	if in.IdentityKey == nil || in.SigningKey == nil || in.SignedPrekey == nil {
		return k, fmt.Errorf("%w: identity_key, signing_key and signed_prekey are required", chat.ErrBadRequest)
	}
	var err error
	decode := func(field, s string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = decodeKey(field, s)
		return b
	}
	k.IdentityKey = decode("identity_key", *in.IdentityKey)
	k.SigningKey = decode("signing_key", *in.SigningKey)
	k.SignedPreKey = chat.SignedPreKey{
		KeyID:     in.SignedPrekey.KeyID,
		PublicKey: decode("signed_prekey.public_key", in.SignedPrekey.PublicKey),
		Signature: decode("signed_prekey.signature", in.SignedPrekey.Signature),
	}
	for i, p := range in.OneTimePrekeys {
		k.OneTimePreKeys = append(k.OneTimePreKeys, chat.PreKey{KeyID: p.KeyID, PublicKey: decode(fmt.Sprintf("one_time_prekeys[%d].public_key", i), p.PublicKey)})
	}
	return k, err
}

func (g *Gateway) putKeys(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	var in proto.KeysUpload
	if err := g.decodeBody(w, r, &in); err != nil {
		g.writeError(w, r, err)
		return
	}
	k, err := keysFromWire(in)
	if err == nil {
		err = g.svc.PublishKeys(r.Context(), sess, k)
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// claimKeys claims a one-time prekey of each of a user's devices. A claimer
// gets ClaimsPerClaimer claims per hour (429 past it); a target's prekeys are
// claimed at most ClaimsPerTarget times per hour by everyone together:
// past that, bundles come without a one-time prekey (X3DH works without
// one), so strangers cannot drain a user's prekeys.
func (g *Gateway) claimKeys(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	target := r.PathValue("user_id")
	if ok, wait := g.limits.claimer.Take(sess.UserID); !ok {
		g.writeError(w, r, &chat.RateLimitError{RetryAfter: wait})
		return
	}
	claim := g.svc.ClaimKeys
	if target != sess.UserID { // one's own other devices are never limited
		if ok, _ := g.limits.target.Take(target); !ok {
			claim = g.svc.KeyBundles
		}
	}
	bundles, err := claim(r.Context(), target)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	out := make([]proto.KeyBundle, len(bundles))
	for i, b := range bundles {
		out[i] = proto.KeyBundle{
			DeviceID:    b.DeviceID,
			IdentityKey: encodeKey(b.IdentityKey),
			SigningKey:  encodeKey(b.SigningKey),
			SignedPrekey: proto.SignedPrekey{
				KeyID: b.SignedPreKey.KeyID, PublicKey: encodeKey(b.SignedPreKey.PublicKey), Signature: encodeKey(b.SignedPreKey.Signature),
			},
		}
		if p := b.OneTimePreKey; p != nil {
			out[i].OneTimePrekey = &proto.Prekey{KeyID: p.KeyID, PublicKey: encodeKey(p.PublicKey)}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func (g *Gateway) keyCount(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	n, err := g.svc.PrekeyCount(r.Context(), sess)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"one_time_prekeys": n})
}
