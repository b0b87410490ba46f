#!/bin/sh
# dockpool desktop entrypoint: the VNC password from DOCKPOOL_VNC_PASSWORD (made
# by the provider for this instance, data only, piped to vncpasswd), Xvnc on
# :1 (5901) with twm, websockify serving noVNC on 6901, then the SSH
# entrypoint of the base image, which runs sshd in the foreground.
set -eu
user=${DOCKPOOL_SSH_USER:-root}
home=$(getent passwd "$user" | cut -d: -f6)
if [ -z "$home" ]; then
    echo "dockpool: the login user $user does not exist in this image" >&2
    exit 64
fi
if [ -z "${DOCKPOOL_VNC_PASSWORD:-}" ]; then
    echo "dockpool: DOCKPOOL_VNC_PASSWORD is empty; the provider sets it for each desktop instance" >&2
    exit 64
fi
mkdir -p "$home/.vnc"
printf '%s\n' "$DOCKPOOL_VNC_PASSWORD" | vncpasswd -f >"$home/.vnc/passwd"
chmod 600 "$home/.vnc/passwd"
chown -R "$user" "$home/.vnc"
unset DOCKPOOL_VNC_PASSWORD

# The desktop runs as the login user; tini (docker --init) reaps what it leaves.
run_as() { if [ "$user" = root ]; then "$@"; else su -s /bin/sh "$user" -c 'exec "$0" "$@"' -- "$@"; fi; }
rm -f /tmp/.X1-lock /tmp/.X11-unix/X1
run_as Xvnc :1 -rfbport 5901 -rfbauth "$home/.vnc/passwd" -SecurityTypes VncAuth -geometry 1280x800 -depth 24 \
    -desktop "$(hostname)" -AlwaysShared >/var/log/dockpool-xvnc.log 2>&1 &
run_as env DISPLAY=:1 HOME="$home" /etc/dockpool/xstartup >/var/log/dockpool-desktop.log 2>&1 &
websockify --web /usr/share/novnc 6901 127.0.0.1:5901 >/var/log/dockpool-novnc.log 2>&1 &
exec /usr/local/sbin/dockpool-entrypoint "$@"
