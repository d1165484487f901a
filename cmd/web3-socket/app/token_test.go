package app

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func parseClientToken(t *testing.T, token, secret string, opts ...jwt.ParserOption) (*clientClaims, error) {
	t.Helper()
	var claims clientClaims
	opts = append(opts, jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte(secret), nil }, opts...)
	return &claims, err
}

func TestMintTokenVerifiesWithTheSecretAndCarriesClaims(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JWTSecret = strings.Repeat("x", 32)
	before := time.Now().Truncate(time.Second)
	token, err := MintToken(cfg, "user-42", 2*time.Hour, []string{"lobby", "team:*"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := parseClientToken(t, token, cfg.JWTSecret)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	wantEqual(t, claims.Subject, "user-42")
	wantEqual(t, claims.Rooms, []string{"lobby", "team:*"})
	if exp := claims.ExpiresAt.Time; exp.Before(before.Add(2*time.Hour)) || exp.After(time.Now().Add(2*time.Hour)) {
		t.Errorf("exp %v is not two hours from now", exp)
	}
	if claims.IssuedAt == nil || claims.IssuedAt.Time.Before(before) {
		t.Errorf("iat %v", claims.IssuedAt)
	}
	if claims.Issuer != "" || len(claims.Audience) != 0 {
		t.Errorf("iss/aud set without configuration: %q %q", claims.Issuer, claims.Audience)
	}

	if _, err := parseClientToken(t, token, strings.Repeat("y", 32)); err == nil {
		t.Error("token verifies with another secret")
	}
}

func TestMintTokenWithoutRoomsHasNoRoomsClaim(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JWTSecret = "secret"
	token, err := MintToken(cfg, "u1", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	var raw jwt.MapClaims
	if _, err := jwt.ParseWithClaims(token, &raw, func(*jwt.Token) (any, error) { return []byte("secret"), nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["rooms"]; ok {
		t.Errorf("rooms claim present: %v", raw)
	}
}

func TestMintTokenSetsConfiguredIssuerAndAudience(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JWTSecret = "secret"
	cfg.JWTIssuer = "https://auth.example"
	cfg.JWTAudience = "web3-socket"
	token, err := MintToken(cfg, "u1", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseClientToken(t, token, "secret", jwt.WithIssuer(cfg.JWTIssuer), jwt.WithAudience(cfg.JWTAudience)); err != nil {
		t.Errorf("iss/aud not accepted: %v", err)
	}
	if _, err := parseClientToken(t, token, "secret", jwt.WithAudience("other")); err == nil {
		t.Error("token accepted for another audience")
	}
}

func TestMintTokenExpires(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JWTSecret = "secret"
	token, err := MintToken(cfg, "u1", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseClientToken(t, token, "secret", jwt.WithTimeFunc(func() time.Time { return time.Now().Add(time.Minute) }))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("want an expired token, got %v", err)
	}
}

func TestMintTokenRefusesBadInput(t *testing.T) {
	withSecret := DefaultConfig()
	withSecret.JWTSecret = "secret"
	tests := []struct {
		name string
		cfg  Config
		sub  string
		ttl  time.Duration
		want string
	}{
		{"no secret", DefaultConfig(), "u1", time.Hour, "JWT_SECRET is not set"},
		{"no sub", withSecret, "", time.Hour, "sub"},
		{"zero ttl", withSecret, "u1", 0, "ttl"},
		{"negative ttl", withSecret, "u1", -time.Hour, "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := MintToken(tt.cfg, tt.sub, tt.ttl, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("want an error containing %q, got %v (token %q)", tt.want, err, token)
			}
		})
	}
}
