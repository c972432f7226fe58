"""The OpenAPI document of the HTTP API, and the page that shows it."""
