#!/bin/sh
# Check a Liaison evidence bundle without Liaison: sha256sum for the hash chain, Node.js with
# panva/jose (verify-jws.mjs) for the two signatures. Run it in the bundle's directory or pass
# that directory; prints OK and exits 0 only if every check passes.
set -eu
cd "${1:-$(dirname "$0")}"
fail() { echo "FAIL: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# A string field of a canonical (compact, sorted-keys) JSON file.
field() { grep -o "\"$1\":\"[^\"]*\"" "$2" | head -n 1 | cut -d'"' -f4; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Every record of the message is a record of exactly body.bin, and
# 2. is the record its link in the chain holds (records/<day>-<seq>.json -> chain/<day>/<seq>.json).
body=$(sha body.bin)
for record in records/*.json; do
    name=$(basename "$record" .json)
    link="chain/${name%-*}/${name##*-}.json"
    [ "$(field body_sha256 "$record")" = "$body" ] || fail "$record is not a record of body.bin"
    [ -f "$link" ] || fail "$record has no link $link"
    [ "$(field record "$link")" = "$(sha "$record")" ] || fail "$link does not hold $record"
done

# 3. Each link holds the hash of the one before it, up to the link the head was signed at.
for folder in chain/*/; do
    day=$(basename "$folder")
    prev=""
    for seq in $(ls "$folder" | grep '^[0-9]*\.json$' | sed 's/\.json$//' | sort -n); do
        link="$folder$seq.json"
        if [ -n "$prev" ]; then
            [ "$(field prev "$link")" = "$prev" ] || fail "$link: prev is not the hash of the link before"
        fi
        prev=$(sha "$link")
        last=$seq
    done
    echo "$day $last $prev" >> "$work/ends"
done

# 4. The sender's signature and the ledger's heads verify, and each head is its chain's last link.
node "$(pwd)/verify-jws.mjs" . | sort > "$work/heads"
sort "$work/ends" > "$work/ends.sorted"
cmp -s "$work/ends.sorted" "$work/heads" || fail "a chain does not end in its signed head"
echo "OK: body.bin, its signature, its ledger records and their chain to a signed head"
