#!/bin/sh
# make-certs.sh DIR -- generates every certificate the tests use into DIR.
#
# All keys are ECDSA P-256 unless the name says rsa.  Files (PEM unless
# noted):
#   ca.pem ca.key            root CA "casl test root"
#   int.pem int.key          intermediate CA signed by the root
#   server.pem server.key    leaf signed by int: DNS:localhost, IP:127.0.0.1, IP:::1
#   server-chain.pem         server.pem + int.pem (what a server presents)
#   certkey.pem              server-chain.pem + server.key in one file
#   server.key.der           server.key as DER (PKCS#8)
#   server-enc.key           server.key encrypted with the password "secret"
#   server-rsa.pem server-rsa.key server-rsa-chain.pem   RSA-2048 leaf, same names
#   nameonly.pem nameonly.key nameonly-chain.pem   DNS:localhost only (no IP SANs)
#   wrongname.pem wrongname.key wrongname-chain.pem   DNS:wrong.example only
#   expired.pem expired.key expired-chain.pem    valid 2020-01-01 .. 2021-01-01
#   notyet.pem notyet.key notyet-chain.pem       valid from 2090-01-01
#   selfsigned.pem selfsigned.key   self-signed, DNS:localhost, IP:127.0.0.1
#   other-ca.pem other-ca.key       a second root nobody trusts
#   untrusted.pem untrusted.key     leaf for localhost signed by other-ca
#   client.pem client.key           client certificate (CN=casl test client) from int
#   client-chain.pem                client.pem + int.pem
#   client-untrusted.pem client-untrusted.key   client cert from other-ca
#   alpha.pem alpha.key alpha-chain.pem   DNS:alpha.test
#   beta.pem beta.key beta-chain.pem      DNS:beta.test, DNS:*.beta.test
#   cadir/                    hashed directory holding ca.pem (for CA paths)
#   ca-bundle.pem             ca.pem (root only; the int comes from the peer)
#   server.p12                server.pem + server.key + int.pem, PKCS#12,
#                             password "secret"
#   revoked.pem revoked.key revoked-chain.pem   localhost leaf from int, revoked
#   client-revoked.pem client-revoked.key       client cert from int, revoked
#   int2.pem int2.key         a second intermediate from the root, revoked
#   int2leaf.pem int2leaf.key int2leaf-chain.pem   localhost leaf from int2
#   int-crl.pem ca-crl.pem int2-crl.pem   each CA's CRL; crl-all.pem: all three
#   ocsp-good.der             OCSP response (signed by int) for server.pem: good
#   ocsp-revoked.der          the same for revoked.pem: revoked
#   ocsp-other.der            a good response about nameonly.pem
#   ocsp-badsig.der           a response for server.pem signed by other-ca
set -eu
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
if [ -f .complete ]; then exit 0; fi

ossl() { openssl "$@" 2>/dev/null; }
eckey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

cat > ca.cnf <<'CNF'
[ca]
default_ca = ca_default
[ca_default]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = copy
[policy_any]
commonName = supplied
organizationName = optional
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_int]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
mkdir -p newcerts
: > index.txt
echo 1000 > serial

# root CA and a second, untrusted root
for ca in ca other-ca; do
  eckey $ca.key
  ossl req -new -x509 -config ca.cnf -extensions v3_ca -key $ca.key \
    -subj "/O=cl-async-ssl tests/CN=casl test $ca root" -days 3650 -out $ca.pem
done

# intermediate
eckey int.key
ossl req -new -config ca.cnf -key int.key -subj "/O=cl-async-ssl tests/CN=casl test intermediate" -out int.csr
ossl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -extensions v3_int \
  -days 3650 -in int.csr -out int.pem -notext

# leaf KEYFILE NAME SIGNER(ca|int|other-ca) EXT SANS [start end]
leaf() {
  name=$1 signer=$2 ext=$3 cn=$4 sans=$5
  shift 5
  [ -f "$name.key" ] || eckey "$name.key"
  if [ -n "$sans" ]; then
    ossl req -new -config ca.cnf -key "$name.key" -subj "/O=cl-async-ssl tests/CN=$cn" \
      -addext "subjectAltName=$sans" -out "$name.csr"
  else
    ossl req -new -config ca.cnf -key "$name.key" -subj "/O=cl-async-ssl tests/CN=$cn" \
      -out "$name.csr"
  fi
  if [ $# -eq 2 ]; then
    ossl ca -batch -config ca.cnf -cert "$signer.pem" -keyfile "$signer.key" \
      -extensions "$ext" -startdate "$1" -enddate "$2" -in "$name.csr" -out "$name.pem" -notext
  else
    ossl ca -batch -config ca.cnf -cert "$signer.pem" -keyfile "$signer.key" \
      -extensions "$ext" -days 3650 -in "$name.csr" -out "$name.pem" -notext
  fi
  case $signer in int|int2) cat "$name.pem" $signer.pem > "$name-chain.pem" ;; esac
}

leaf server int v3_server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server-rsa.key
leaf server-rsa int v3_server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf nameonly int v3_server localhost "DNS:localhost"
leaf wrongname int v3_server wrong.example "DNS:wrong.example"
leaf expired int v3_server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" 20200101000000Z 20210101000000Z
leaf notyet int v3_server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" 20900101000000Z 20910101000000Z
leaf untrusted other-ca v3_server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client int v3_client "casl test client" ""
leaf client-untrusted other-ca v3_client "casl untrusted client" ""
leaf alpha int v3_server alpha.test "DNS:alpha.test"
leaf beta int v3_server beta.test "DNS:beta.test,DNS:*.beta.test"

# revocation: leaves revoked by int, an intermediate revoked by the root
leaf revoked int v3_server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client-revoked int v3_client "casl revoked client" ""
eckey int2.key
ossl req -new -config ca.cnf -key int2.key -subj "/O=cl-async-ssl tests/CN=casl test intermediate 2" -out int2.csr
ossl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -extensions v3_int \
  -days 3650 -in int2.csr -out int2.pem -notext
leaf int2leaf int2 v3_server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
ossl ca -config ca.cnf -cert int.pem -keyfile int.key -revoke revoked.pem
ossl ca -config ca.cnf -cert int.pem -keyfile int.key -revoke client-revoked.pem
ossl ca -config ca.cnf -cert ca.pem -keyfile ca.key -revoke int2.pem
for c in ca int int2; do
  ossl ca -gencrl -config ca.cnf -cert $c.pem -keyfile $c.key -crldays 3650 -out $c-crl.pem
done
cat int-crl.pem ca-crl.pem int2-crl.pem > crl-all.pem

# OCSP responses (int signs for its own leaves)
ocsp() {
  ossl ocsp -index index.txt -rsigner "$1.pem" -rkey "$1.key" -CA int.pem \
    -issuer int.pem -cert "$2" -ndays 3650 -respout "$3"
}
ocsp int server.pem ocsp-good.der
ocsp int revoked.pem ocsp-revoked.der
ocsp int nameonly.pem ocsp-other.der
ocsp other-ca server.pem ocsp-badsig.der

eckey selfsigned.key
ossl req -new -x509 -config ca.cnf -key selfsigned.key -days 3650 \
  -subj "/O=cl-async-ssl tests/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" -out selfsigned.pem

cat server-chain.pem server.key > certkey.pem
ossl pkcs8 -topk8 -nocrypt -in server.key -outform DER -out server.key.der
ossl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:secret -in server.key -out server-enc.key
cp ca.pem ca-bundle.pem
ossl pkcs12 -export -in server.pem -inkey server.key -certfile int.pem \
  -passout pass:secret -out server.p12
mkdir -p cadir
cp ca.pem cadir/ca.pem
ossl rehash cadir || c_rehash cadir >/dev/null
rm -f ./*.csr
touch .complete
