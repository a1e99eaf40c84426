#!/bin/sh
# Installs every Debian package manta-node needs to build, run and test.
# Idempotent and non-interactive; run as root (make deps).
set -eu
PKGS="build-essential pkg-config
 libzmq3-dev libpaho-mqtt-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
 libgrpc-dev libsodium-dev libseccomp-dev libcap-dev libsqlite3-dev sqlite3
 libtomlplusplus-dev libjansson-dev libcmocka-dev
 mosquitto mosquitto-clients python3-grpcio python3-paho-mqtt python3-pytest python3-protobuf
 runc crun s6 runit mandoc busybox-static b3sum openssl iproute2 procps
 debootstrap umoci xz-utils python3-zmq
 clang libclang-rt-14-dev
 skopeo docker-registry apache2-utils zstd
 debhelper dpkg-dev fakeroot lintian systemd prometheus libtsan2"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
missing=
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "deps: all packages installed"
  exit 0
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $missing
