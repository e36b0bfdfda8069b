# envyard service image: slim, non-root, reproducible: the base is pinned by digest, which
# the build must pass (docker build --build-arg BASE_DIGEST=sha256:... .). PIP_OPTIONS lets
# an offline build install from a mounted wheelhouse (the tests build it that way).
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG BASE_DIGEST
FROM ${BASE_IMAGE}@${BASE_DIGEST}
ARG PIP_OPTIONS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ENVYARD_ROOT=/srv/envyard
WORKDIR /opt/envyard
COPY pyproject.toml README.md ./
COPY builder ./builder
COPY service ./service
RUN python -m pip install --no-compile ${PIP_OPTIONS} '.[service,postgresql,kubernetes,gcs,s3]' && \
    python -c "import os; os.makedirs('/srv/envyard', exist_ok=True); os.chown('/srv/envyard', 1000, 1000)"
# numeric, so Kubernetes can verify runAsNonRoot
USER 1000:1000
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz')"
ENTRYPOINT ["envyard"]
CMD ["serve", "--host", "0.0.0.0"]
