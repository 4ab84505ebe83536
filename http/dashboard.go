package http

import "github.com/surgehq/surge/dashboard"

// dashboardRoutes serves the live dashboard (package dashboard) beside
// /metrics, from the same registry and with the same protection: the
// admin token (which the page exchanges for a session cookie), on the
// admin listener when there is one (the public API then hides it).
func (s *Server) dashboardRoutes() {
	if s.cfg.Gatherer == nil {
		return
	}
	if s.dash == nil { // the Public copy shares the one of New
		s.dash = dashboard.New(dashboard.Config{Gatherer: s.cfg.Gatherer, AdminToken: s.cfg.AdminToken, Logger: s.log})
	}
	s.adminRoute("/dashboard", s.dash.ServeHTTP)
	s.adminRoute("/dashboard/", s.dash.ServeHTTP)
}
