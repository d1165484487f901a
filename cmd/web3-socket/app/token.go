package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// clientClaims are the claims of a client token: sub is the user id, rooms
// the patterns of rooms the client may join itself.
type clientClaims struct {
	jwt.RegisteredClaims
	Rooms []string `json:"rooms,omitempty"`
}

// MintToken returns a client JWT for user sub, signed HS256 with JWT_SECRET,
// valid for ttl from now, with the rooms claim when rooms is not empty and
// iss/aud when JWT_ISSUER/JWT_AUDIENCE are configured.
func MintToken(cfg Config, sub string, ttl time.Duration, rooms []string) (string, error) {
	if cfg.JWTSecret == "" {
		return "", errors.New("JWT_SECRET is not set: a client token is signed with it")
	}
	if sub == "" {
		return "", errors.New("mint token: sub (the user id) is required")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint token: ttl %s: want more than 0", ttl)
	}
	now := time.Now()
	claims := clientClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			Issuer:    cfg.JWTIssuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Rooms: rooms,
	}
	if cfg.JWTAudience != "" {
		claims.Audience = jwt.ClaimStrings{cfg.JWTAudience}
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(cfg.JWTSecret))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return signed, nil
}
