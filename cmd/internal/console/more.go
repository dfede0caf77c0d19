package console

import "net/http"

// routesMore adds the profile, traffic, report and audit pages.
func (c *Console) routesMore(m *http.ServeMux) {
	m.HandleFunc("GET "+pathProfiles, c.admin(c.profilesPage))
	m.HandleFunc("GET "+pathEdit, c.admin(c.editPage))
	m.HandleFunc("POST "+pathEdit, c.admin(c.preview))
	m.HandleFunc("POST "+pathApply, c.admin(c.apply))
	m.HandleFunc("GET "+pathTraffic, c.admin(c.traffic))
	m.HandleFunc("GET "+pathReports, c.admin(c.reports))
	m.HandleFunc("GET "+pathAudit, c.admin(c.auditSearch))
}
