#!/usr/bin/env bash
# Benchmark 1, the classic way: the ten generations of bench/ten.toml as a
# shell pipeline, one process per step, in a fresh temporary directory.
# Needs: tr, head, mkpasswd, ssh-keygen, nebula-cert, age-keygen, sops.
set -eu  # no pipefail: tr ends on SIGPIPE once head has enough
SOPS=${SOPS:-sops}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
umask 077
id=$(tr -dc a-z0-9 </dev/urandom | head -c16)
key=$(tr -dc A-Za-z0-9 </dev/urandom | head -c32)
pin=$(tr -dc 0-9 </dev/urandom | head -c6)
pass=$(tr -dc A-Za-z0-9 </dev/urandom | head -c16)
printf '%s' "$pass" | mkpasswd -m yescrypt --stdin >pass.hash
ssh-keygen -q -t ed25519 -N '' -C admin@bench -f ssh
nebula-cert ca -name bench -out-crt nebula-ca.crt -out-key nebula-ca.key
nebula-cert sign -ca-crt nebula-ca.crt -ca-key nebula-ca.key -name host-1 -ip 10.8.0.5/16 -out-crt nebula.crt -out-key nebula.key
printf 'ID="%s"\nKEY="%s"\nPIN="%s"\n' "$id" "$key" "$pin" >app.env
age-keygen -o age.key 2>/dev/null
recipient=$(age-keygen -y age.key)
{
  for f in app.env pass.hash ssh ssh.pub nebula.crt nebula.key; do
    printf '%s: |\n' "$f"
    sed 's/^/  /' "$f"
  done
} >secrets.yaml
"$SOPS" encrypt --age "$recipient" secrets.yaml >secrets.sops.yaml
