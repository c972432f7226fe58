"""The router's own HTTP headers."""

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")  # where WSGI puts it
ANTHROPIC_REQUEST_ID_HEADER = "request-id"  # where the anthropic SDK looks for it
REPLICA_HEADER = "X-AI-Router-Replica"
COST_HEADER = "X-AI-Router-Cost-USD"
