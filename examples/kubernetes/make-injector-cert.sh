#!/usr/bin/env bash
# Creates the injector's serving certificate (its own small CA, 1 year), stores it in the
# Secret tessera-injector-tls and puts the CA into the MutatingWebhookConfiguration's
# caBundle. Needs openssl and kubectl, run after `kubectl apply -f injector.yaml`.
# (With cert-manager, use a Certificate and its CA injector instead.)
set -euo pipefail
ns=tessera-system
dns="tessera-injector.$ns.svc"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=tessera-injector-ca" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$dns" \
  -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:tessera-injector.%s\nextendedKeyUsage=serverAuth\n' "$dns" "$ns" > "$dir/ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 365 -extfile "$dir/ext" -out "$dir/tls.crt" 2>/dev/null
kubectl -n "$ns" create secret tls tessera-injector-tls --cert "$dir/tls.crt" --key "$dir/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
bundle="$(base64 < "$dir/ca.crt" | tr -d '\n')"
kubectl patch mutatingwebhookconfiguration tessera-injector --type json -p "[
  {\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$bundle\"},
  {\"op\":\"replace\",\"path\":\"/webhooks/1/clientConfig/caBundle\",\"value\":\"$bundle\"}]"
kubectl -n "$ns" rollout restart deployment tessera-injector
