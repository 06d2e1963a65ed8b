# syntax=docker/dockerfile:1
# The agent container: the service (`python -m runtime.service serve`, the default command) and
# the queue worker (the same image with `python -m runtime.service worker`). The build context is
# the repository root, because `runtime` is imported as a top-level package; .dockerignore
# allow-lists what goes in. `cdk deploy` builds and pushes this for the container stack. Locally:
#   docker build -t agent . && docker run --rm -p 8080:8080 --read-only --tmpfs /tmp --env-file .env agent

# Both stages: CPython 3.13 (the runtime needs 3.11+) on Debian 12 slim, pinned to the digest of
# the multi-architecture index, so every rebuild starts from the same bytes until the pin changes
# (written out twice, not as an ARG, so that scanners see the pinned tag; a test keeps them equal).

# --- build: the dependencies into a virtualenv, from hashed wheels only -----------------------------
FROM python:3.13.15-slim-bookworm@sha256:2325bb286ec344af3e5898cc224b5844e2707ac6e26b1632516fd3edc84a5e26 AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY runtime/container-requirements.txt runtime/container-requirements.txt
# No pip inside the virtualenv (the base image's pip installs into it): the final image carries
# no installer. Wheels only, so no compiler is needed and nothing is built from source;
# --require-hashes refuses any file that is not the locked one.
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes \
        --only-binary=:all: --no-deps -r runtime/container-requirements.txt \
 && python -m pip --python /opt/venv/bin/python check

# --- runtime: the virtualenv and the code, run as an unprivileged user ------------------------------
FROM python:3.13.15-slim-bookworm@sha256:2325bb286ec344af3e5898cc224b5844e2707ac6e26b1632516fd3edc84a5e26
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# A fixed UID/GID >= 10000, outside the range of any user the base image or a host defines.
RUN groupadd --system --gid 10001 agent \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin agent
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Owned by root and not writable by the app's user; compiled here, because at run time the root
# filesystem is read-only (the only writable path is the /tmp volume the task mounts).
COPY runtime/ runtime/
RUN python -m compileall -q runtime
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "runtime.service", "healthcheck"]
CMD ["python", "-m", "runtime.service", "serve"]
