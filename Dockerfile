# syntax=docker/dockerfile:1
# ai-router: `ai-router serve` runs the gRPC server (50051) and gunicorn + gevent (8080).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The router's user. /app stays root's: the running router cannot change its code or config.
# With auth.keys and no REDIS_URL, limits and budgets are a SQLite file (STATE_PATH below) in a
# directory of the user's own, a volume so that they outlive the container. It is chowned before
# VOLUME declares it because a new volume starts out as a copy of the image's directory.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin airouter \
    && mkdir -p /var/lib/ai-router && chown 10001:10001 /var/lib/ai-router
VOLUME /var/lib/ai-router

# Dependencies first, in a layer of their own that stays cached until setup.cfg changes:
# install the package's requirements from its metadata alone, with a placeholder package.
COPY setup.py setup.cfg README.md ./
RUN mkdir ai_router && echo '__version__ = "0.0.0"' > ai_router/__init__.py \
    && pip install . && pip uninstall -y ai-router && rm -rf ai_router build

# Then the code, with its gRPC modules generated at build time.
COPY protos ./protos
COPY ai_router ./ai_router
RUN python -m grpc_tools.protoc -Iai_router/_generated=protos \
        --python_out=. --grpc_python_out=. --pyi_out=. protos/ai_router.proto \
    && pip install --no-deps . && rm -rf build
COPY config.yaml gunicorn.conf.py ./

# Listen on every interface inside the container; publish ports deliberately.
# STATE_PATH: the SQLite file in the volume; REDIS_URL, when set, puts that state in a Redis
# that several replicas share instead (docker-compose.yaml does).
ENV HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    GRPC_PORT=50051 \
    STATE_PATH=/var/lib/ai-router/state.db
USER 10001:10001
EXPOSE 8080 50051

HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('HTTP_PORT', '8080'), timeout=2)"]

# Exec form: ai-router is PID 1 and gets SIGTERM itself, and stops both servers gracefully.
STOPSIGNAL SIGTERM
CMD ["ai-router", "serve"]
