package harness

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims returns claims for user sub expiring after ttl (already expired when
// ttl is negative), with iat now and extra claims (such as "rooms") added.
func Claims(sub string, ttl time.Duration, extra map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iat": now.Add(min(ttl, 0) - time.Minute).Unix(), "exp": now.Add(ttl).Unix()}
	if sub != "" {
		c["sub"] = sub
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// SignHS256 returns claims signed with HS256 and secret.
func SignHS256(t testing.TB, secret []byte, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatalf("harness: sign HS256: %v", err)
	}
	return s
}

// UserToken returns an HS256 token for sub signed with secret, valid for an
// hour, with the rooms claim when rooms is not nil.
func UserToken(t testing.TB, secret []byte, sub string, rooms []string) string {
	t.Helper()
	extra := map[string]any{}
	if rooms != nil {
		extra["rooms"] = rooms
	}
	return SignHS256(t, secret, Claims(sub, time.Hour, extra))
}

// UnsignedToken returns claims as an "alg: none" token, built by hand since
// no careful library signs one.
func UnsignedToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("harness: encode token part: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
}

// RSAKey is a generated RSA key pair for RS256 tokens.
type RSAKey struct {
	Private *rsa.PrivateKey
	// PublicPEM is the public key as a PKIX "PUBLIC KEY" PEM block, the form
	// given to the server as JWT_PUBLIC_KEY.
	PublicPEM string
}

// NewRSAKey generates a 2048-bit RSA key pair.
func NewRSAKey(t testing.TB) *RSAKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("harness: generate RSA key: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatalf("harness: marshal RSA public key: %v", err)
	}
	return &RSAKey{
		Private:   priv,
		PublicPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}
}

// SignRS256 returns claims signed with RS256 and the private key.
func (k *RSAKey) SignRS256(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(k.Private)
	if err != nil {
		t.Fatalf("harness: sign RS256: %v", err)
	}
	return s
}
