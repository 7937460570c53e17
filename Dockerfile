# One image for every role: web (gunicorn), worker (celery worker) or beat (celery beat).
#   docker build -t slipway .
#   docker run slipway web | worker | beat | migrate | <any command>
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    OMP_NUM_THREADS=1 SLIPWAY_DATA_DIR=/data SLIPWAY_STATIC_ROOT=/app/staticfiles
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 slipway && mkdir -p /data && chown slipway /data

# requirements.lock: the exact versions CI tested (uv pip compile; see README "Reproducible install").
COPY pyproject.toml README.md requirements.lock ./
COPY portal ./portal
COPY apps ./apps
COPY workers ./workers
RUN pip install -c requirements.lock .
COPY manage.py ./
COPY templates ./templates
COPY static ./static
COPY bench ./bench
# Static files are collected at build time (whitenoise serves them, compressed and hashed).
RUN DEBUG=false SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput -v0

USER slipway
EXPOSE 8000
VOLUME ["/data"]
ENTRYPOINT ["python", "-m", "portal.entrypoint"]
CMD ["web"]
