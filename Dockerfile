# syntax=docker/dockerfile:1
# The one pweza-core image: the container's args choose what it runs,
#   pweza manager | pweza operator ... | pweza agent --pool NAME ...
# (the Helm chart and the operator pass them). It runs as uid 1000 and needs no shell.
#
#   docker build -t ghcr.io/pweza/pweza-core:0.1.0 .
#
# The build stage uses Debian 12's own Python 3.11, the same interpreter at the same path
# (/usr/bin/python3.11) as the distroless runtime, so the virtualenv made here runs there as is.
#
# hack/build-image.sh builds this same file with no registry and no network: it passes
# local Debian bookworm bases made with mmdebstrap (BUILD_IMAGE already has python3.11 and
# python3.11-venv; RUNTIME_IMAGE is the interpreter alone), puts a wheelhouse in wheels/ and
# sets PIP_INSTALL_OPTIONS="--no-index --find-links /wheels". With the defaults below, pip
# installs from PyPI and wheels/ holds only its README.

ARG BUILD_IMAGE=debian:12-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
ARG PIP_INSTALL_OPTIONS=""
# Only a base without Python needs apt (and the network); the local build base has both packages.
RUN if ! /usr/bin/python3.11 -c 'import ensurepip, venv' 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY wheels /wheels
RUN /usr/bin/python3.11 -m venv /venv && /venv/bin/pip install ${PIP_INSTALL_OPTIONS} --upgrade pip
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# A regular (not editable) install: the runtime stage gets the package, not the source tree.
# pip's isolated build environment gets setuptools the same way (PyPI, or the wheelhouse).
RUN /venv/bin/pip install ${PIP_INSTALL_OPTIONS} . \
    && /venv/bin/pip uninstall -y pip \
    && /venv/bin/python -m compileall -q /venv/lib \
    && /venv/bin/pweza version

FROM ${RUNTIME_IMAGE}
COPY --from=build /venv /venv
# The examples' handler modules (plain Python, no dependencies), so that `kubectl apply -f
# examples/...` after `helm install` has agents that can import them, as `pweza up` does locally.
# Your own handlers go in an image built FROM this one, on PYTHONPATH the same way.
COPY examples/*/*.py /opt/pweza/examples/
ENV PATH=/venv/bin:/usr/bin:/bin \
    PYTHONPATH=/opt/pweza/examples \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp
# manager: HTTP, gRPC, metrics; operator: metrics, health.
EXPOSE 8080 9090 2112 8000 8081
USER 1000:1000
ENTRYPOINT ["/venv/bin/pweza"]
CMD ["--help"]
