package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Session cookies.
const (
	cookieName = "surge_dashboard"
	cookiePath = "/dashboard"
	// sessionTTL is a war-room shift; then the page asks for the token
	// again.
	sessionTTL = 12 * time.Hour
)

// sessions checks the admin token and issues and verifies session
// cookies: "v1.<expiry unix>.<HMAC-SHA256 of both>". The key is derived
// from the admin token, so sessions survive a restart and die when the
// token is rotated, and no state is kept per session.
type sessions struct {
	none      bool // no admin token: nothing is authorized
	tokenHash [32]byte
	key       []byte
}

func newSessions(adminToken string) *sessions {
	mac := hmac.New(sha256.New, []byte(adminToken))
	mac.Write([]byte("surge dashboard session key v1"))
	return &sessions{none: adminToken == "", tokenHash: sha256.Sum256([]byte(adminToken)), key: mac.Sum(nil)}
}

// isAdmin compares in constant time; hashing first hides the length too.
// Without an admin token nobody is admin, the empty token included.
func (s *sessions) isAdmin(token string) bool {
	if s.none {
		return false
	}
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
}

// authorized: the request carries the admin token as a bearer token, or
// a session cookie that has not expired.
func (s *sessions) authorized(r *http.Request, now time.Time) bool {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return s.isAdmin(h[7:])
	}
	c, err := r.Cookie(cookieName)
	return err == nil && s.valid(c.Value, now)
}

func (s *sessions) sign(payload string) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *sessions) valid(v string, now time.Time) bool {
	i := strings.LastIndexByte(v, '.')
	if s.none || i < 0 || !strings.HasPrefix(v, "v1.") {
		return false
	}
	payload, sig := v[:i], v[i+1:]
	if !hmac.Equal([]byte(sig), []byte(s.sign(payload))) {
		return false
	}
	exp, err := strconv.ParseInt(payload[len("v1."):], 10, 64)
	return err == nil && now.Unix() < exp
}

// cookie is a new session's cookie: HttpOnly (no script reads it),
// SameSite=Strict (no other site's page sends it), scoped to the
// dashboard's paths, Secure when the sign-in came over TLS (overTLS).
func (s *sessions) cookie(now time.Time, tls bool) *http.Cookie {
	payload := "v1." + strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	return &http.Cookie{
		Name:     cookieName,
		Value:    payload + "." + s.sign(payload),
		Path:     cookiePath,
		MaxAge:   int(sessionTTL / time.Second),
		HttpOnly: true,
		Secure:   tls,
		SameSite: http.SameSiteStrictMode,
	}
}
