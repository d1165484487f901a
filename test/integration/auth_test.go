package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/web3-socket/web3-socket/test/harness"
)

const (
	missingToken = "unauthorized: missing token"
	invalidToken = "unauthorized: invalid token"
	expiredToken = "unauthorized: token expired"
)

// TestRefusedConnectionSaysWhyWithoutLeakingSecrets proves each refusal reason
// of the handshake, on a server that verifies HS256 with JWT_SECRET and RS256
// with JWT_PUBLIC_KEY, and that neither the secret nor the token shows up in
// the connect_error or in the server's output.
func TestRefusedConnectionSaysWhyWithoutLeakingSecrets(t *testing.T) {
	t.Parallel()
	key := harness.NewRSAKey(t)
	env := harness.DefaultEnv()
	env["JWT_PUBLIC_KEY"] = key.PublicPEM
	s := harness.StartServer(t, env)
	secret := s.JWTSecret()

	valid := harness.Claims("refused-user", time.Hour, nil)
	cases := []struct {
		name  string
		token string
		want  string
	}{
		{"missing token", "", missingToken},
		{"garbage token", "this-is-not-a-jwt", invalidToken},
		{"expired token", harness.SignHS256(t, secret, harness.Claims("refused-user", -time.Minute, nil)), expiredToken},
		{"wrong secret", harness.SignHS256(t, []byte(harness.RandomSecret(32)), valid), invalidToken},
		{"alg none", harness.UnsignedToken(t, valid), invalidToken},
		{"HS256 signed with the RSA public key", harness.SignHS256(t, []byte(key.PublicPEM), valid), invalidToken},
		{"no sub", harness.SignHS256(t, secret, harness.Claims("", time.Hour, nil)), invalidToken},
	}

	t.Run("control", func(t *testing.T) {
		// The same server accepts good HS256 and RS256 tokens, so every
		// refusal below is about the token, not the configuration.
		d := harness.NewDriver(t)
		connect(t, d, s, harness.Modes[0], "hs256", harness.UserToken(t, secret, "hs-user", nil))
		connect(t, d, s, harness.Modes[0], "rs256", key.SignRS256(t, harness.Claims("rs-user", time.Hour, nil)))
	})

	for _, mode := range harness.Modes {
		for _, tc := range cases {
			t.Run(mode.Name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				d := harness.NewDriver(t)
				d.Connect("c", s.URL, harness.ConnectOptions{Mode: mode, Token: tc.token})
				r := d.WaitConnectError("c", wait)
				if r.Message != tc.want {
					t.Errorf("connect_error message %q, want %q", r.Message, tc.want)
				}
				for _, leak := range []string{string(secret), tc.token} {
					if leak == "" {
						continue
					}
					if strings.Contains(r.Message, leak) || strings.Contains(string(r.Data), leak) {
						t.Errorf("connect_error leaks the secret or the token: message %q data %s", r.Message, r.Data)
					}
				}
			})
		}
	}

	t.Cleanup(func() {
		logs := s.Logs()
		if strings.Contains(logs, string(secret)) {
			t.Errorf("the server output contains JWT_SECRET")
		}
		for _, tc := range cases {
			if tc.token != "" && strings.Contains(logs, tc.token) {
				t.Errorf("the server output contains the refused token of %q", tc.name)
			}
		}
	})
}

// TestBearerHeaderAuthenticatesNonBrowserClient proves that a client without
// auth.token is authenticated by its "Authorization: Bearer" header: it is
// connected as the token's user (a message to that user reaches it), and a bad
// header token is refused as invalid.
func TestBearerHeaderAuthenticatesNonBrowserClient(t *testing.T) {
	t.Parallel()
	s := harness.StartServer(t, harness.DefaultEnv())
	forEachMode(t, func(t *testing.T, mode harness.Mode) {
		d := harness.NewDriver(t)
		user := "bearer-" + mode.Name
		d.Connect("good", s.URL, harness.ConnectOptions{Mode: mode, Bearer: harness.UserToken(t, s.JWTSecret(), user, nil)})
		awaitConnected(t, d, mode, "good")

		data := map[string]any{"hello": user}
		status, body := s.Do("POST", "/api/message", map[string]any{"userId": user, "event": "greeting", "data": data}, nil)
		if status != 202 {
			t.Fatalf("POST /api/message: %d %s, want 202", status, body)
		}
		expectData(t, d.WaitEvent("good", "greeting", wait), data)

		d.Connect("bad", s.URL, harness.ConnectOptions{Mode: mode, Bearer: "not-a-jwt"})
		if r := d.WaitConnectError("bad", wait); r.Message != invalidToken {
			t.Errorf("connect_error message %q, want %q", r.Message, invalidToken)
		}
	})
}
