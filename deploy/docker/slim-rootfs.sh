#!/bin/sh
# Assembles a minimal root filesystem for a dynamically linked binary, so the runtime image
# can be FROM scratch: the binary's shared libraries and their loader (as ldd names them),
# bash (the HEALTHCHECK asks /health through bash's /dev/tcp), the CA bundle, and
# passwd/group entries for root and the service user (uid/gid 10001).
# Usage, inside a Debian stage that has ca-certificates installed:
#   slim-rootfs.sh ROOT /usr/local/bin/NAME...   (each binary already copied below ROOT)
set -eu
root=$1
shift

install -d "$root/bin" "$root/etc/ssl/certs" "$root/usr/local/bin"
install -d -m 1777 "$root/tmp"
cp -L /bin/bash "$root/bin/bash"

# Every library (and the loader) the binaries and bash load, at the path ldd reports.
elfs="$root/bin/bash"
for bin in "$@"; do elfs="$elfs $root$bin"; done
for elf in $elfs; do
  ldd "$elf" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }'
done | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$root"
done

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ngateway:x:10001:10001::/nonexistent:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\ngateway:x:10001:\n' > "$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
