# envyard service image: slim, non-root, reproducible: the base is pinned by digest, which
# the build must pass (docker build --build-arg BASE_DIGEST=sha256:... .).
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG BASE_DIGEST
FROM ${BASE_IMAGE}@${BASE_DIGEST}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ENVYARD_ROOT=/srv/envyard
RUN useradd --uid 1000 --create-home envyard && mkdir -p /srv/envyard && chown envyard /srv/envyard
WORKDIR /opt/envyard
COPY pyproject.toml README.md ./
COPY builder ./builder
COPY service ./service
RUN pip install --no-compile '.[postgresql]'
USER envyard
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz')"
ENTRYPOINT ["envyard"]
CMD ["serve", "--host", "0.0.0.0"]
