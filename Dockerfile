# routellm-gateway: docker build -t routellm-gateway . && docker run -p 6060:6060 -e OPENAI_API_KEY ...
# The classifier model (~1.1 GB) downloads on first start; mount a cache to keep it:
#   -v $HOME/.cache/huggingface:/root/.cache/huggingface
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY classifier classifier
# torch from the default index is a CUDA build (several GB). For the small CPU build, pass the
# PyTorch CPU wheel index: docker build --build-arg PIP_EXTRA_INDEX_URL=<cpu wheel index> .
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install torch==2.13.0 && pip install .
EXPOSE 6060
# Inside a container the gateway must bind all interfaces for -p to reach it.
CMD ["routellm-gateway", "--host", "0.0.0.0", "--port", "6060"]
