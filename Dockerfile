FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker ./broker
RUN pip install . && useradd --system --uid 10001 --home-dir /app broker
USER broker

# Mount broker.yaml, idp_configs/, rules.yaml and keys/ at /config; pass secrets as environment variables.
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["sts-broker", "serve", "--config", "/config/broker.yaml", "--host", "0.0.0.0", "--port", "8000"]
