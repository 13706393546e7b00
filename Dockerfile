# graphgate: the GraphQL API in a container.
#
#   docker build -t graphgate .
#   docker run --rm -p 8000:8000 --env-file .env -e APP_ENV=production \
#       -e DATABASE_URL=postgres://user:pass@db:5432/graphgate graphgate
#
# `python -m api serve` applies pending migrations, then serves on HOST:PORT with
# WORKERS processes (all three read from the environment by the app itself).

# --- build: install the project and its dependencies into a virtualenv -----------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README.md is the package's long description; the glob lets a checkout without it build too.
COPY pyproject.toml README.m[d] ./
COPY api ./api
COPY schema ./schema
RUN pip install .

# --- runtime: the virtualenv only, no sources, no build tools ---------------------
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 graphgate \
    && useradd --system --uid 10001 --gid graphgate --home-dir /app \
       --no-create-home --shell /usr/sbin/nologin graphgate

COPY --from=build /opt/venv /opt/venv

# The working directory holds `data/` (SQLite file, development secrets, generated
# keys): writable by the service user only. Mount a volume there to keep it.
WORKDIR /app
RUN mkdir -p /app/data \
    && chown -R graphgate:graphgate /app \
    && chmod 0750 /app/data

USER graphgate

ENV HOST=0.0.0.0 \
    PORT=8000

EXPOSE 8000

# No curl in slim images: ask /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4).status == 200 else 1)"]

CMD ["python", "-m", "api", "serve"]
