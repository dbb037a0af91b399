#!/bin/sh
# Run inside a private mount namespace (unshare --mount), as root:
#   setuid_rig.sh STAGE MALLOC_LIBRARY CORE_LIBRARY PROGRAM -- COMMAND...
# Mounts a tmpfs on STAGE (an empty directory every user can reach), copies
# PROGRAM there as STAGE/probe, a setuid-root file, and the two libraries
# (the malloc library finds the core one by $ORIGIN), makes the namespace's
# /etc/ld.so.preload name the malloc library (a bind mount over the file, or
# an overlay on /etc when there is none), then runs COMMAND. MALLOC_LIBRARY
# "-": no library, no preload (CORE_LIBRARY is then ignored).
# Nothing outside the namespace changes. Exit status 77 with a reason on
# stderr: the rig cannot be set up here.
set -eu
stage=$1 library=$2 core=$3 program=$4
shift 4
[ "$1" = "--" ] && shift

cannot() {
    echo "setuid rig: $*" >&2
    exit 77
}

mount -t tmpfs -o mode=0755,suid,exec tmpfs "$stage" || cannot "cannot mount a tmpfs on $stage"
cp "$program" "$stage/probe" || cannot "cannot copy the program"
chown 0:0 "$stage/probe"
chmod 4755 "$stage/probe"
[ "$library" = "-" ] && exec "$@"
cp "$library" "$core" "$stage/" || cannot "cannot copy the libraries"
chown 0:0 "$stage"/*.so
chmod 0755 "$stage"/*.so
printf '%s\n' "$stage/$(basename "$library")" > "$stage/ld.so.preload"
chmod 0644 "$stage/ld.so.preload"

if [ -e /etc/ld.so.preload ]; then
    mount --bind "$stage/ld.so.preload" /etc/ld.so.preload || cannot "cannot bind-mount over /etc/ld.so.preload"
else
    mkdir "$stage/upper" "$stage/work"
    cp "$stage/ld.so.preload" "$stage/upper/ld.so.preload"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$stage/upper,workdir=$stage/work" /etc \
        || cannot "no /etc/ld.so.preload to bind-mount over, and no overlay mount on /etc"
fi
exec "$@"
