# videogate: one image for `videogate api`, `videogate worker` and `videogate serve`.
# Build: docker build -t videogate .      Run: see compose.yaml and docs/deploy.md
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VIDEOGATE_DATA_DIR=/var/lib/videogate VIDEOGATE_HOST=0.0.0.0 VIDEOGATE_PORT=8000 \
    VIDEOGATE_LOG_FORMAT=json

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[server]' && rm -rf /src

# Scratch only: with VIDEOGATE_BLOB_URL=s3://… nothing here needs to outlive the container.
RUN useradd --system --home /var/lib/videogate --create-home videogate
USER videogate
WORKDIR /var/lib/videogate
EXPOSE 8000 9100

HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
ENTRYPOINT ["videogate"]
CMD ["api"]
