# The seq2seq translation server (and trainer) on a CUDA-capable PyTorch runtime image.
# The same image runs on CPU when no GPU is visible: the server picks CUDA only when present.
#   docker compose --profile train run --rm train   # first: train the pair models into the volume
#   docker compose up -d serve                 # serve every model of the volume
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SEQ2SEQ_HOST=0.0.0.0 \
    SEQ2SEQ_PORT=8000 \
    SEQ2SEQ_MODELS=/models

WORKDIR /app
# torch comes with the base image (CUDA build); pip keeps it because it satisfies torch>=2.2.
COPY pyproject.toml README.md ./
COPY seq2seq ./seq2seq
COPY training ./training
COPY serve ./serve
RUN pip install . && useradd --create-home --uid 1000 seq2seq \
    && mkdir -p /models && chown seq2seq /models
USER seq2seq

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
CMD ["seq2seq", "serve"]
