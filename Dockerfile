# routellm-gateway and its classifier service, one image:
#   docker build -t routellm-gateway .
#   docker run -p 6060:6060 -e OPENAI_API_KEY -v routellm-cache:/cache routellm-gateway
#   docker run ... routellm-gateway routellm-classifier --host 0.0.0.0   (the classifier service)
# deploy/compose.yaml runs both with Redis, Prometheus and Grafana.
FROM python:3.11-slim

# torch from the default index is a CUDA build (several GB). For the small CPU build, pass
# PyTorch's CPU wheel index: docker build --build-arg PIP_EXTRA_INDEX_URL=<cpu wheel index> .
ARG PIP_EXTRA_INDEX_URL=""

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    ROUTELLM_BERT_CACHE_DIR=/cache/onnx

RUN groupadd --system --gid 10001 routellm \
    && useradd --system --uid 10001 --gid routellm --home-dir /app --no-create-home routellm \
    && mkdir -p /cache/huggingface /cache/onnx \
    && chown -R routellm:routellm /cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY classifier classifier
COPY config config
# torch first, pinned like pyproject, so the extra index above can serve the CPU build.
RUN pip install torch==2.13.0 && pip install .

# The classifier model (~1.1 GB) and its ONNX export are kept here between starts.
VOLUME ["/cache"]
USER 10001:10001
EXPOSE 6060 8800

# python, not curl: the slim base has no curl. /health is 503 while the gateway drains.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:6060/health', timeout=2)"]

# Inside a container the server must bind all interfaces for a published port to reach it.
# SIGTERM drains in-flight streams for ROUTELLM_SHUTDOWN_GRACE (30 s): stop with a longer timeout.
CMD ["routellm-gateway", "--host", "0.0.0.0", "--port", "6060"]
