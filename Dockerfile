# syntax=docker/dockerfile:1

# ---- build: install Rollcall and its dependencies into a virtualenv ---------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies first, read from pyproject.toml, so this slow layer is rebuilt only when
# pyproject.toml changes and not on every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# The project itself (no dev extras); .dockerignore keeps local state and secrets out.
COPY . .
RUN pip install .

# ---- runtime: the virtualenv only, run by an unprivileged user --------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# /app is the working directory and must be writable: with no ROLLCALL_*_URL set
# (development mode) Rollcall keeps its embedded servers and file storage in ./.rollcall.
RUN groupadd --system --gid 10001 rollcall \
    && useradd --system --uid 10001 --gid rollcall --home-dir /app --shell /usr/sbin/nologin rollcall \
    && install -d -o rollcall -g rollcall /app

# Same base image and path as the build stage, so the venv's interpreter links still resolve.
COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Numeric, so orchestrators enforcing "run as non-root" can verify it without /etc/passwd.
USER 10001:10001

EXPOSE 8000

# Liveness only (/health does no I/O); assumes the default port. Services that do not
# serve HTTP (worker, migrate, seed) disable it in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["rollcall"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
