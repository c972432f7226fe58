"""The HTTP server around the app: the gunicorn worker, the WSGI entry point, the client
disconnect watch and live reload inside a worker."""
