# Sourced by scripts/test-image: podman set up for this kind of machine, and the local base
# images that stand in for registry images (none can be pulled here).
#
#   ensure_podman          podman, buildah, debootstrap, runc, podman-compose; containers.conf
#   ensure_debian_base     localhost/bookworm-base from debootstrap (cached as a zstd tar)
#   ensure_python_standin  docker.io/library/python:3.11-slim-bookworm made on that base
#
# Any step that cannot run fails the caller (set -e): an image test never skips silently.

IMAGE_CACHE=${PARLEY_IMAGE_CACHE:-/var/cache/parley-image}
DEBIAN_MIRROR=${PARLEY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_TAG=localhost/bookworm-base
PY_STANDIN_TAG=docker.io/library/python:3.11-slim-bookworm

fail() { printf '\n!! image test FAILED: %s\n' "$*" >&2; exit 1; }

ensure_podman() {
  # dnsname: service names resolve between the containers of one compose project (CNI backend)
  apt_install podman buildah debootstrap runc zstd uidmap slirp4netns fuse-overlayfs \
    containernetworking-plugins golang-github-containernetworking-plugin-dnsname
  mkdir -p "$IMAGE_CACHE"
  # root cannot raise rlimits on this host, and crun refuses its hybrid cgroup layout.
  local conf=/etc/containers/containers.conf
  if [ ! -e "$conf" ]; then
    log "writing $conf (default_ulimits, runtime = runc)"
    mkdir -p /etc/containers
    cat > "$conf" <<'EOF'
# Written by Parley's scripts/test-image (only when this file was absent).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
  elif ! grep -q '^runtime *= *"runc"' "$conf" || ! grep -q 'nofile=20000' "$conf"; then
    # Someone else's file: leave it, and point podman at ours for this run only.
    local ours="$IMAGE_CACHE/containers.conf"
    printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\n' > "$ours"
    export CONTAINERS_CONF="$ours"
    log "$conf lacks runc/ulimits: using $ours for this run (CONTAINERS_CONF)"
  fi
  podman info >/dev/null || fail "podman info does not work on this machine"
  if [ ! -x "$IMAGE_CACHE/compose-venv/bin/podman-compose" ]; then
    log "podman-compose into $IMAGE_CACHE/compose-venv"
    python3 -m venv "$IMAGE_CACHE/compose-venv"
    "$IMAGE_CACHE/compose-venv/bin/pip" install -q 'podman-compose==1.6.0' \
      || fail "pip install podman-compose"
  fi
  PODMAN_COMPOSE="$IMAGE_CACHE/compose-venv/bin/podman-compose"
}

ensure_debian_base() {
  if podman image exists "$BASE_TAG"; then return 0; fi
  local tarball="$IMAGE_CACHE/bookworm-minbase.tar.zst"
  if [ ! -s "$tarball" ]; then
    local rootfs
    rootfs=$(mktemp -d "$IMAGE_CACHE/rootfs.XXXXXX")
    log "debootstrap --variant=minbase bookworm (cached afterwards in $tarball)"
    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$IMAGE_CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$IMAGE_CACHE/debootstrap.log" >&2; rm -rf "$rootfs"; fail "debootstrap"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | zstd -q -T0 -o "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "podman import $BASE_TAG from $tarball"
  zstd -q -dc "$tarball" | podman import --change 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null \
    || fail "podman import of the Debian base"
}

ensure_python_standin() {
  # Only this local stand-in trusts the host's extra CA certificates (pip and npm over HTTPS in
  # a build here need them); docker/Dockerfile itself stays standard.
  if podman image exists "$PY_STANDIN_TAG"; then return 0; fi
  local ctx
  ctx=$(mktemp -d)
  mkdir -p "$ctx/certs"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
  cat > "$ctx/Containerfile" <<EOF
FROM $BASE_TAG
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-venv python3-pip ca-certificates \\
 && update-ca-certificates \\
 && ln -sf /usr/bin/python3 /usr/local/bin/python \\
 && rm -rf /var/lib/apt/lists/*
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \\
    npm_config_cafile=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
EOF
  log "building the local stand-in $PY_STANDIN_TAG"
  podman build -q -t "$PY_STANDIN_TAG" "$ctx" >/dev/null || { rm -rf "$ctx"; fail "stand-in python base"; }
  rm -rf "$ctx"
}
