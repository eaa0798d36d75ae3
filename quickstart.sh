#!/usr/bin/env bash
# Runs the vault on its embedded default: SQLite and a blob directory in ./vault-data,
# listening on 127.0.0.1:8700. On first run it creates two admin identities (./admin.key
# and ./admin2.key, mode 0600, kept outside the data dir: the server never holds anyone's
# identity) and initialises the data dir with them as the trust root: two, because
# enrolling a further admin and approving a covert grant each need a second admin. Later
# runs just serve.
#
# Settings (environment): VAULT_DATA_DIR, VAULT_ADMIN, VAULT_ADMIN_KEY, VAULT_ADMIN2,
# VAULT_ADMIN2_KEY, VAULT_LISTEN.
set -euo pipefail
cd "$(dirname "$0")"

data=${VAULT_DATA_DIR:-./vault-data}
admin=${VAULT_ADMIN:-admin}
key=${VAULT_ADMIN_KEY:-./$admin.key}
admin2=${VAULT_ADMIN2:-admin2}
key2=${VAULT_ADMIN2_KEY:-./$admin2.key}
listen=${VAULT_LISTEN:-127.0.0.1:8700}

cargo build --release --quiet -p vault-server -p vault-cli
bin=$PWD/target/release

# The public id (vault1...) of an identity file, making the identity first if needed.
public_id() {
  if [ ! -f "$1" ]; then
    "$bin/vault-cli" keygen --out "$1" 2>/dev/null
  else
    "$bin/vault-cli" public-id "$1"
  fi
}

if [ ! -f "$data/vault.db" ]; then
  "$bin/vault-server" init --data-dir "$data" \
    --admin "$admin" --recipient "$(public_id "$key")" \
    --admin "$admin2" --recipient "$(public_id "$key2")" >/dev/null
fi
root=$("$bin/vault-server" trust-root --data-dir "$data" 2>/dev/null)

cat >&2 <<MSG

The vault runs at http://$listen (Ctrl-C stops it); its trust root is $root.
In another shell:

  export PATH="$bin:\$PATH" VAULT_SERVER=http://$listen VAULT_TRUST_ROOT=$root
  export VAULT_USER=$admin VAULT_IDENTITY=$(realpath "$key")
  vault-cli login

MSG
exec "$bin/vault-server" serve --data-dir "$data" --listen "$listen"
