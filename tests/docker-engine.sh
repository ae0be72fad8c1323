# Sourced by tests/run.sh: Debian's Docker engine started with no network of its own
# (--bridge=none --iptables=false: no bridge, no rules; containers run with --network none),
# its state in a scratch folder, and the image tests' base: Debian 12 made with debootstrap
# and imported, as no registry is reachable (built once per machine). Exports DOCKER_HOST
# and FENGINE_TEST_BASE_IMAGE; stops the engine when the tests end.
docker_root=/var/tmp/fengine-docker
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
if ! [ -x /usr/sbin/dockerd ] || ! [ -x /usr/bin/docker ] || ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q docker.io debootstrap >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q docker.io debootstrap >/dev/null; }
fi
mkdir -p "$docker_root"
export DOCKER_HOST="unix://$docker_root/docker.sock"
# An engine started here before (a session's) is used as it is.
if ! /usr/bin/docker info >/dev/null 2>&1; then
  $sudo /usr/sbin/dockerd --bridge=none --iptables=false --ip6tables=false \
    --data-root "$docker_root/data" --exec-root "$docker_root/exec" \
    --pidfile "$docker_root/dockerd.pid" --host "$DOCKER_HOST" >"$docker_root/dockerd.log" 2>&1 &
  dockerd_pid=$!
fi
for _ in $(seq 100); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.2; done
/usr/bin/docker info >/dev/null || { cat "$docker_root/dockerd.log"; exit 1; }

export FENGINE_TEST_BASE_IMAGE=fengine-base:bookworm
if ! /usr/bin/docker image inspect "$FENGINE_TEST_BASE_IMAGE" >/dev/null 2>&1; then
  rootfs="$docker_root/rootfs"
  $sudo rm -rf "$rootfs"
  $sudo debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" \
    http://deb.debian.org/debian >"$docker_root/debootstrap.log" 2>&1 ||
    { tail -20 "$docker_root/debootstrap.log"; exit 1; }
  # What an image needs no more: the package cache and indexes, documentation, locales.
  $sudo rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/usr/share/info/*
  $sudo tar -C "$rootfs" -c . | /usr/bin/docker import - "$FENGINE_TEST_BASE_IMAGE" >/dev/null
  $sudo rm -rf "$rootfs"
fi
# The image tests' earlier builds, replaced under their tag.
/usr/bin/docker image prune --force >/dev/null
