# routellm-gateway and its classifier service, one image:
#   docker build -t routellm-gateway --build-arg PIP_EXTRA_INDEX_URL=<PyTorch CPU wheel index> .
#   docker run -p 6060:6060 -e OPENAI_API_KEY -v routellm-cache:/cache -v routellm-data:/data \
#     routellm-gateway
#   docker run ... routellm-gateway routellm-classifier --host 0.0.0.0   (the classifier service)
# deploy/compose.yaml runs both with Redis, Prometheus and Grafana.
FROM python:3.11-slim

# torch from the default index is a CUDA build (several GB). For the small CPU build, pass
# PyTorch's CPU wheel index: docker build --build-arg PIP_EXTRA_INDEX_URL=<cpu wheel index> .
ARG PIP_EXTRA_INDEX_URL=""

# The only writable paths are the two volumes: /cache (model and ONNX export, rebuildable) and
# /data (the decision ledger, ROUTELLM_LEDGER; a postgresql:// URL there moves it off the box).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    ROUTELLM_BERT_CACHE_DIR=/cache/onnx \
    ROUTELLM_LEDGER=/data/ledger.sqlite3

RUN groupadd --system --gid 10001 routellm \
    && useradd --system --uid 10001 --gid routellm --home-dir /app --no-create-home routellm \
    && mkdir -p /cache/huggingface /cache/onnx /data \
    && chown -R routellm:routellm /cache /data

WORKDIR /app
# Dependencies in layers that no source file feeds, so an edit rebuilds only the last one.
# torch (~1.4 GB) alone first, pinned like pyproject (a test keeps the two equal): a change to
# another dependency does not download it again either.
RUN pip install torch==2.13.0
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md ./
COPY gateway gateway
COPY classifier classifier
COPY config config
RUN pip install --no-deps .
COPY deploy/healthcheck.py /usr/local/bin/routellm-healthcheck

VOLUME ["/cache", "/data"]
USER 10001:10001
EXPOSE 6060 8800

# /health of whichever server runs, on the --port it was started with (read from its command
# line). 503 while the gateway drains. The start period covers a first start that downloads the
# model (~1.1 GB) and exports it to ONNX; the first 200 ends it early.
HEALTHCHECK --interval=10s --timeout=3s --start-period=600s --retries=3 \
    CMD ["python", "/usr/local/bin/routellm-healthcheck"]

# Inside a container the server must bind all interfaces for a published port to reach it.
# SIGTERM drains in-flight streams for ROUTELLM_SHUTDOWN_GRACE (30 s): stop with a longer timeout.
CMD ["routellm-gateway", "--host", "0.0.0.0", "--port", "6060"]
