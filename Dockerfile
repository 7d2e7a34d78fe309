# syntax=docker/dockerfile:1
# sts-broker image: a wheel built in a build stage, installed on a slim runtime that runs as uid 10001 with a
# read-only root filesystem (only /tmp, a tmpfs, is written). README "Deployment" tells how to run it.
#
# Base image: pinned to an exact tag (Python patch release, Debian release), the same in both stages. Pin it by
# digest where you build: the machines this repository is developed on cannot reach the registry to read it.
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm --format '{{json .Manifest.Digest}}'
# then write python:3.11.14-slim-bookworm@sha256:<digest> in both FROM lines (tests/deploy/test_dockerfile.py
# accepts either form, never a floating tag).
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer and the next are rebuilt only when it changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > requirements.txt \
 && pip wheel --wheel-dir /wheels/deps --requirement requirements.txt
# Then the broker's own wheel (no dependencies: they are above).
COPY README.md ./
COPY broker ./broker
RUN pip wheel --no-deps --wheel-dir /wheels/app .

FROM python:3.11.14-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp TMPDIR=/tmp \
    STS_BROKER_CONFIG=/config/broker.yaml STS_BROKER_HOST=0.0.0.0 STS_BROKER_PORT=8000
RUN groupadd --system --gid 10001 broker \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin broker
# Dependencies before code: a change to broker/ reuses this layer. pip compiles the .pyc files here, at build
# time, so nothing is written under site-packages at run time.
COPY --from=build /src/requirements.txt /tmp/requirements.txt
COPY --from=build /wheels/deps /wheels/deps
RUN pip install --no-index --find-links /wheels/deps --requirement /tmp/requirements.txt \
 && rm -rf /wheels /tmp/requirements.txt
COPY --from=build /wheels/app /wheels/app
RUN pip install --no-index --no-deps /wheels/app/*.whl && rm -rf /wheels

USER 10001:10001
WORKDIR /tmp
# Mount the config tree (examples/config: broker.yaml, idp_configs/, rules.yaml, keys/) read-only at /config and
# a tmpfs at /tmp; give secrets as environment variables. STS_BROKER_PORT moves the listener and the health
# check together.
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 CMD ["sts-broker", "healthcheck"]
STOPSIGNAL SIGTERM
CMD ["sts-broker", "serve", "--shutdown-deadline", "20", "--drain", "5"]
