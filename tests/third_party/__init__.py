"""Third-party client libraries pointed at the router by base URL only, one module per library."""
