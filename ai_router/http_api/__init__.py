"""The HTTP front door: a Flask app served by gunicorn with gevent workers. Never imports grpc."""
