# Stand-in for python:3.11.x-slim-bookworm where that image cannot be pulled (no registry here).
# The contract the esteira images rely on, kept: Debian bookworm, Python 3.11 with `python`, `python3`
# and `pip` in /usr/local/bin, site-packages under /usr/local/lib/python3.11, root as the image user,
# `groupadd`/`useradd` available, the CA bundle at /etc/ssl/certs.
# What differs (docs/images.md): the interpreter is Debian's python3.11 (3.11.2 on bookworm) and
# /usr/local is a virtual environment of it, not a source build of the latest 3.11 patch release.
ARG DEBIAN_IMAGE=localhost/esteira-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN python3.11 -m venv /usr/local \
    && /usr/local/bin/python -m pip --version
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
