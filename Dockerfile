# qmon: the Asterisk queue monitor. Run with docker-compose.yml (docs/deploy.md "Docker"): the config is mounted
# at /etc/qmon/qmon.toml; `qmon demo` needs none.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/qmon qmon && mkdir -p /var/lib/qmon \
    && chown qmon /var/lib/qmon
USER qmon
WORKDIR /var/lib/qmon
# 9465: HTTP (/metrics, API: set QMON_HTTP_TOKEN), 4573: FastAGI for the survey (no authentication).
EXPOSE 9465 4573
# /healthz needs no token; qmon in a container binds 0.0.0.0 (QMON_HTTP_BIND), so loopback reaches it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9465/healthz', timeout=3)"]
ENTRYPOINT ["qmon"]
CMD ["run", "--config", "/etc/qmon/qmon.toml"]
