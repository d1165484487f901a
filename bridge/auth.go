package bridge

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Reasons a connection is refused; each is the connect_error message the
// client sees. They never carry the token or the key.
var (
	ErrMissingToken = errors.New("unauthorized: missing token")
	ErrInvalidToken = errors.New("unauthorized: invalid token")
	ErrTokenExpired = errors.New("unauthorized: token expired")
)

// AuthConfig says how client tokens are verified.
type AuthConfig struct {
	// Secret verifies HS256/384/512 tokens.
	Secret string
	// PublicKeyPEM verifies RS*/PS*, ES* or EdDSA tokens, by the key's type.
	PublicKeyPEM string
	// Issuer and Audience are required in the token when set.
	Issuer   string
	Audience string
}

// Claims is what the bridge keeps of a verified token.
type Claims struct {
	jwt.RegisteredClaims
	// Rooms lists the patterns of the rooms the client may join itself; "*"
	// matches any run of characters.
	Rooms []string `json:"rooms,omitempty"`
}

// Verifier checks client tokens.
type Verifier struct {
	parser    *jwt.Parser
	secret    []byte
	publicKey any
}

// NewVerifier returns a Verifier for cfg. Only the algorithms of the
// configured keys are accepted, which rules out "none" and algorithm
// confusion (an HS token signed with the public key as secret).
func NewVerifier(cfg AuthConfig) (*Verifier, error) {
	v := &Verifier{}
	var methods []string
	if cfg.Secret != "" {
		v.secret = []byte(cfg.Secret)
		methods = append(methods, "HS256", "HS384", "HS512")
	}
	if cfg.PublicKeyPEM != "" {
		key, algs, err := ParsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.publicKey = key
		methods = append(methods, algs...)
	}
	if len(methods) == 0 {
		return nil, errors.New("auth: neither JWT_SECRET nor JWT_PUBLIC_KEY is set")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods)}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks token and returns its claims, or one of ErrMissingToken,
// ErrInvalidToken and ErrTokenExpired.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrMissingToken
	}
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(token, claims, v.key)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrTokenExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	case claims.Subject == "":
		return nil, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	return claims, nil
}

func (v *Verifier) key(t *jwt.Token) (any, error) {
	// The method was already checked against the configured keys' algorithms;
	// pick the key by the method's family so an HS token never meets the
	// public key.
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.secret != nil {
			return v.secret, nil
		}
	default:
		if v.publicKey != nil {
			return v.publicKey, nil
		}
	}
	return nil, fmt.Errorf("no key for %s", t.Method.Alg())
}

// ParsePublicKey reads a PEM public key (PKIX, or PKCS#1 for RSA) and returns
// it with the JWT algorithms it verifies.
func ParsePublicKey(pemText string) (any, []string, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(pemText)))
	if block == nil {
		return nil, nil, errors.New("auth: JWT_PUBLIC_KEY is not PEM")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		rsaKey, rsaErr := x509.ParsePKCS1PublicKey(block.Bytes)
		if rsaErr != nil {
			return nil, nil, fmt.Errorf("auth: JWT_PUBLIC_KEY: %w", err)
		}
		key = rsaKey
	}
	switch key.(type) {
	case *rsa.PublicKey:
		return key, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		return key, []string{"ES256", "ES384", "ES512"}, nil
	case ed25519.PublicKey:
		return key, []string{"EdDSA"}, nil
	default:
		return nil, nil, fmt.Errorf("auth: JWT_PUBLIC_KEY: unsupported key type %T", key)
	}
}

// tokenFrom takes the token from the handshake auth, else from an
// "Authorization: Bearer" header (non-browser clients).
func tokenFrom(auth map[string]any, authorization string) string {
	if t, ok := auth["token"].(string); ok && t != "" {
		return t
	}
	if rest, ok := strings.CutPrefix(authorization, "Bearer "); ok {
		return strings.TrimSpace(rest)
	}
	return ""
}

// RoomAllowed reports whether a client holding patterns may join room.
func RoomAllowed(patterns []string, room string) bool {
	for _, p := range patterns {
		if globMatch(p, room) {
			return true
		}
	}
	return false
}

// globMatch matches s against pattern, where '*' stands for any run of
// characters (including none) and every other character for itself.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return strings.HasSuffix(s, last)
}
