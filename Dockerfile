# The gateway as a container: `docker build -t gateway .`, or `docker compose up --build`
# (compose.yaml: two gateways and Redis with AOF). It needs a Redis named `redis`
# (configs/docker.toml) and GATEWAY_ADMIN_TOKEN in the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The package is built from /src and installed into site-packages; /src is removed so
# `python -m gateway` (how the supervisor starts its workers) finds only the installed one.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install . && rm -rf /src

# The configs last: editing one rebuilds one layer.
WORKDIR /app
COPY configs ./configs
RUN useradd --system --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin gateway
USER gateway

EXPOSE 8080
# /readyz: 200 once the store answers, 503 while Redis is unreachable or the gateway drains.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status != 200)"]
# SIGTERM: every worker drains (clients get close 1012 and resume on another gateway).
STOPSIGNAL SIGTERM
CMD ["gateway", "serve", "--config", "configs/docker.toml"]
