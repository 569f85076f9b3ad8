# One image for the API, the worker and the one-shot migration (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DATA_DIR=/data
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY backprop ./backprop
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
# Optional extras baked into the image (comma-separated; "" for none): onnx = model export,
# fast = numba for the compiled training kernel (+~210 MB; without it training.kernel "auto" is
# always "numpy"). Compiled code is cached under DATA_DIR (/data/numba-cache): once per volume.
ARG EXTRAS=onnx,fast
RUN pip install ".[${EXTRAS}]" && useradd --create-home --uid 10001 app && mkdir -p /data && chown app /data
USER app

EXPOSE 8000 9808
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
CMD ["python", "-m", "gunicorn", "-c", "python:service.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "4", "service.app:create_app()"]
