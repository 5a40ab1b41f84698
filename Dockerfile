# qmon: the Asterisk queue monitor. `docker compose up` runs it; without a config file it runs the demo.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/qmon qmon && mkdir -p /var/lib/qmon \
    && chown qmon /var/lib/qmon
USER qmon
WORKDIR /var/lib/qmon
EXPOSE 9465 4573
ENTRYPOINT ["qmon"]
CMD ["run", "--config", "/etc/qmon/qmon.toml"]
