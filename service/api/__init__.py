"""HTTP routers, one file per resource; each parses, calls the service layer, returns."""
