#!/bin/sh
# dockpool instance entrypoint: a host key of its own on first start, and the
# client's key (DOCKPOOL_AUTHORIZED_KEY, validated by the provider: one OpenSSH
# public key line) as the only authorized key of DOCKPOOL_SSH_USER. The key is
# data here, written with printf, never evaluated.
set -eu
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
if [ -n "${DOCKPOOL_AUTHORIZED_KEY:-}" ]; then
    user=${DOCKPOOL_SSH_USER:-root}
    home=$(getent passwd "$user" | cut -d: -f6)
    if [ -z "$home" ]; then
        echo "dockpool: the login user $user does not exist in this image" >&2
        exit 64
    fi
    group=$(id -g "$user")
    mkdir -p "$home/.ssh"
    printf '%s\n' "$DOCKPOOL_AUTHORIZED_KEY" >"$home/.ssh/authorized_keys"
    chown -R "$user:$group" "$home/.ssh"
    chmod 700 "$home/.ssh"
    chmod 600 "$home/.ssh/authorized_keys"
fi
mkdir -p /run/sshd
exec "$@"
