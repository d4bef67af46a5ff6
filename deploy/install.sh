#!/bin/sh
# Install devicectl on a fresh Debian machine (run as root from a checkout): the Debian packages,
# a venv in /opt/devicectl installed from the hash-locked requirements, the users, the Mosquitto
# configuration and the systemd units. Idempotent: run it again after an update.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/devicectl

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv mosquitto chromium cage curl

id devicectl >/dev/null 2>&1 || useradd --system --home /var/lib/devicectl --shell /usr/sbin/nologin --groups dialout devicectl
id kiosk >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin --groups video,input,render kiosk
install -d -o devicectl -g devicectl -m 0750 /var/lib/devicectl
install -d -m 0755 /etc/devicectl

# the code, then a venv from the lock: every package pinned and checked against its hash
rm -rf "$PREFIX.new" && mkdir -p "$PREFIX.new"
cp -r "$SRC/devicectl" "$SRC/drivers" "$SRC/simulators" "$SRC/safety" "$SRC/deploy" "$SRC/pyproject.toml" \
      "$SRC/README.md" "$SRC/requirements.lock" "$PREFIX.new/"
python3 -m venv "$PREFIX.new/.venv"
"$PREFIX.new/.venv/bin/python" -m pip install -q --require-hashes --no-deps -r "$PREFIX.new/requirements.lock"
"$PREFIX.new/.venv/bin/python" -m pip install -q --no-deps --no-build-isolation "$PREFIX.new"
rm -rf "$PREFIX.old" && { [ ! -d "$PREFIX" ] || mv "$PREFIX" "$PREFIX.old"; } && mv "$PREFIX.new" "$PREFIX"

[ -f /etc/devicectl/devicectl.toml ] || install -m 0640 -g devicectl "$SRC/deploy/devicectl.example.toml" /etc/devicectl/devicectl.toml
if [ ! -f /etc/devicectl/mosquitto/passwd ]; then
    "$PREFIX/.venv/bin/devicectl" mqtt-config --dir /etc/devicectl/mosquitto --port 1883
    chgrp devicectl /etc/devicectl/mosquitto/service.password && chmod 0640 /etc/devicectl/mosquitto/service.password
    chown mosquitto /etc/devicectl/mosquitto/passwd
fi

install -m 0644 "$SRC"/deploy/systemd/*.service /etc/systemd/system/
systemctl daemon-reload
systemctl disable --now mosquitto.service 2>/dev/null || true  # Debian's own broker: ours replaces it
systemctl enable --now devicectl-mosquitto.service devicectl.service
systemctl enable devicectl-kiosk.service
echo "installed: edit /etc/devicectl/devicectl.toml (serial ports by id, instruments), then"
echo "  systemctl restart devicectl && journalctl -u devicectl -f   (the first admin PIN is printed there)"
echo "  systemctl start devicectl-kiosk   (the touchscreen on tty1)"
