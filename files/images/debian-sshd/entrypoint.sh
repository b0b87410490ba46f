#!/bin/sh
# Each instance gets its own host key on first start (never one baked into the image).
set -e
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
mkdir -p /run/sshd
exec "$@"
