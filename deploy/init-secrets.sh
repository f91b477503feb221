#!/usr/bin/env bash
# Creates the secrets docker-compose.yml mounts, under deploy/secrets/, once: a file that exists
# is kept (re-running never changes a password or a key the containers already use).
#
#   mysql_root_password, mysql_password, admin_password   random passwords
#   sftp_host_ed25519_key(.pub), sftp_host_key_fingerprint the SFTP server's host key and the
#                                                          fingerprint the ISP config pins
#   sftp_client_key(.pub)                                  Relais' login at the SFTP server
#
# The folder is 0700: nobody else on the host gets in. The files in it are 0644 because compose
# bind-mounts them as they are and the Relais containers run as uid 10001, not as you; the SFTP
# host key stays 0600 (sshd, as root, reads it; a readable host key is refused).
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"

password() { # file
  [ -e "$1" ] && return 0
  (umask 022 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$1")
  echo "created $1"
}

ssh_key() { # file, comment
  [ -e "$1" ] && return 0
  ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"
  echo "created $1"
}

password "$dir/mysql_root_password"
password "$dir/mysql_password"
password "$dir/admin_password"

ssh_key "$dir/sftp_host_ed25519_key" "relais-compose-sftp"
chmod 0600 "$dir/sftp_host_ed25519_key"
if [ ! -e "$dir/sftp_host_key_fingerprint" ]; then
  ssh-keygen -l -E sha256 -f "$dir/sftp_host_ed25519_key.pub" | awk '{print $2}' \
    >"$dir/sftp_host_key_fingerprint"
  echo "created $dir/sftp_host_key_fingerprint"
fi

ssh_key "$dir/sftp_client_key" "relais"
chmod 0644 "$dir"/sftp_client_key "$dir"/*.pub "$dir/sftp_host_key_fingerprint"
