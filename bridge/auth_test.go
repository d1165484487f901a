package bridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "0123456789abcdef0123456789abcdef"

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func publicPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func valid() jwt.MapClaims {
	return jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestVerifier(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := publicPEM(t, &rsaKey.PublicKey)
	b64 := base64.RawURLEncoding.EncodeToString
	noneToken := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"sub":"u1"}`)) + "."

	hs := AuthConfig{Secret: secret}
	rs := AuthConfig{PublicKeyPEM: rsaPEM}
	tests := []struct {
		name  string
		cfg   AuthConfig
		token string
		want  error
	}{
		{"HS256 valid", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), valid()), nil},
		{"HS512 valid", hs, sign(t, jwt.SigningMethodHS512, []byte(secret), valid()), nil},
		{"no exp accepted", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "exp", nil)), nil},
		{"missing", hs, "", ErrMissingToken},
		{"garbage", hs, "not.a.token", ErrInvalidToken},
		{"wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-00"), valid()), ErrInvalidToken},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "exp", time.Now().Add(-time.Minute).Unix())), ErrTokenExpired},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "nbf", time.Now().Add(time.Hour).Unix())), ErrInvalidToken},
		{"no sub", hs, sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "sub", nil)), ErrInvalidToken},
		{"alg none", hs, noneToken, ErrInvalidToken},
		{"RS256 valid", rs, sign(t, jwt.SigningMethodRS256, rsaKey, valid()), nil},
		{"HS token against RS key (confusion)", rs, sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), valid()), ErrInvalidToken},
		{"HS token signed with the PEM when both are set", AuthConfig{Secret: secret, PublicKeyPEM: rsaPEM},
			sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), valid()), ErrInvalidToken},
		{"ES256 against RS key", rs, sign(t, jwt.SigningMethodES256, ecKey, valid()), ErrInvalidToken},
		{"ES256 valid", AuthConfig{PublicKeyPEM: publicPEM(t, &ecKey.PublicKey)}, sign(t, jwt.SigningMethodES256, ecKey, valid()), nil},
		{"RS token against HS secret", hs, sign(t, jwt.SigningMethodRS256, rsaKey, valid()), ErrInvalidToken},
		{"issuer required and right", AuthConfig{Secret: secret, Issuer: "me"}, sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "iss", "me")), nil},
		{"issuer required and wrong", AuthConfig{Secret: secret, Issuer: "me"}, sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "iss", "you")), ErrInvalidToken},
		{"audience required and missing", AuthConfig{Secret: secret, Audience: "app"}, sign(t, jwt.SigningMethodHS256, []byte(secret), valid()), ErrInvalidToken},
		{"audience required and right", AuthConfig{Secret: secret, Audience: "app"}, sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "aud", "app")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Verify(tt.token)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify: err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && claims.Subject != "u1" {
				t.Fatalf("subject %q, want u1", claims.Subject)
			}
			if err != nil && (strings.Contains(err.Error(), secret) || (tt.token != "" && strings.Contains(err.Error(), tt.token))) {
				t.Fatalf("error leaks the secret or the token: %v", err)
			}
		})
	}
}

func TestVerifierReadsRoomsClaim(t *testing.T) {
	v, err := NewVerifier(AuthConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), with(valid(), "rooms", []string{"news-*", "lobby"})))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(claims.Rooms, ",") != "news-*,lobby" {
		t.Fatalf("rooms = %v", claims.Rooms)
	}
}

func TestNewVerifierNeedsAKey(t *testing.T) {
	if _, err := NewVerifier(AuthConfig{}); err == nil {
		t.Fatal("no key: want an error")
	}
	if _, err := NewVerifier(AuthConfig{PublicKeyPEM: "not pem"}); err == nil {
		t.Fatal("bad PEM: want an error")
	}
}

func TestTokenFrom(t *testing.T) {
	tests := []struct {
		auth          map[string]any
		authorization string
		want          string
	}{
		{map[string]any{"token": "a"}, "Bearer b", "a"},
		{nil, "Bearer b", "b"},
		{map[string]any{"token": 5}, "", ""},
		{nil, "Basic xyz", ""},
		{nil, "", ""},
	}
	for _, tt := range tests {
		if got := tokenFrom(tt.auth, tt.authorization); got != tt.want {
			t.Errorf("tokenFrom(%v, %q) = %q, want %q", tt.auth, tt.authorization, got, tt.want)
		}
	}
}

func TestRoomAllowed(t *testing.T) {
	tests := []struct {
		patterns []string
		room     string
		want     bool
	}{
		{[]string{"news-*"}, "news-1", true},
		{[]string{"news-*"}, "news-", true},
		{[]string{"news-*"}, "sport-1", false},
		{[]string{"*"}, "anything", true},
		{[]string{"lobby"}, "lobby", true},
		{[]string{"lobby"}, "lobby2", false},
		{[]string{"a*b*c"}, "aXbYc", true},
		{[]string{"a*b*c"}, "aXcYb", false},
		{[]string{"a*a"}, "a", false},
		{[]string{"*-vip"}, "team-vip", true},
		{nil, "lobby", false},
	}
	for _, tt := range tests {
		if got := RoomAllowed(tt.patterns, tt.room); got != tt.want {
			t.Errorf("RoomAllowed(%v, %q) = %v, want %v", tt.patterns, tt.room, got, tt.want)
		}
	}
}
