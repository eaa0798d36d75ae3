#!/usr/bin/env bash
# Runs the vault on its embedded default: SQLite and a blob directory in ./vault-data,
# listening on 127.0.0.1:8700. On first run it creates an admin identity (./admin.key,
# mode 0600, kept outside the data dir: the server never holds anyone's identity) and
# initialises the data dir with that admin. Later runs just serve.
#
# Settings (environment): VAULT_DATA_DIR, VAULT_ADMIN, VAULT_ADMIN_KEY, VAULT_LISTEN.
set -euo pipefail
cd "$(dirname "$0")"

data=${VAULT_DATA_DIR:-./vault-data}
admin=${VAULT_ADMIN:-admin}
key=${VAULT_ADMIN_KEY:-./$admin.key}
listen=${VAULT_LISTEN:-127.0.0.1:8700}

cargo build --release --quiet -p vault-server -p vault-cli
bin=$PWD/target/release

if [ ! -f "$data/vault.db" ]; then
  if [ ! -f "$key" ]; then
    "$bin/vault-cli" keygen --out "$key" >/dev/null
  fi
  recipient=$(sed -n 's/^# public key: //p' "$key")
  "$bin/vault-server" init --data-dir "$data" --admin "$admin" --recipient "$recipient"
fi

cat >&2 <<MSG

The vault runs at http://$listen (Ctrl-C stops it). In another shell:

  export PATH="$bin:\$PATH" VAULT_SERVER=http://$listen VAULT_USER=$admin VAULT_IDENTITY=$(realpath "$key")
  vault-cli login

MSG
exec "$bin/vault-server" serve --data-dir "$data" --listen "$listen"
