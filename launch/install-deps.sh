#!/usr/bin/env bash
# launch/install-deps.sh — installs the Debian packages funnel needs that
# are missing (as root, or through sudo).  Extra package names given as
# arguments are installed too (e.g. python3-torch for the benchmarks).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin openssh-client
      libzmq3-dev libopenblas-dev liblz4-dev iproute2 "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
