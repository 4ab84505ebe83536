package http

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// CORS costs a purchase without an Origin header (every purchase not
// from a browser) no allocation: the sold-out path stays as cheap with
// --cors-origins as without.
func TestCORSNoOriginAllocs(t *testing.T) {
	s := &Server{cors: newCORS([]string{"https://shop.example.com"})}
	r := httptest.NewRequest(http.MethodPost, "/v1/sales/s/purchases", nil)
	w := httptest.NewRecorder()
	if n := testing.AllocsPerRun(1000, func() {
		if !s.applyCORS(w, r) {
			t.Fatal("a purchase was taken for a preflight")
		}
	}); n != 0 {
		t.Errorf("applyCORS without Origin: %v allocations, want 0", n)
	}
	if len(w.Header()) != 0 {
		t.Errorf("a purchase without Origin got headers %v", w.Header())
	}
}
