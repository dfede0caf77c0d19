package console

import "net/http"

// routesMore adds the pages of later steps.
func (c *Console) routesMore(m *http.ServeMux) {}
