#!/usr/bin/env bash
# redkit cache: set/get/del round trips, misses, binary values through stdin and stdout, TTLs.
#   test_cache.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

expect 0 rk cache set greeting hello
expect 0 rk cache get greeting
[ "$out" = hello ] || fail "get returned '$out'"
[ "$(rcli get "${PREFIX}greeting")" = hello ] || fail "the value is not at <prefix><key>"
ok "set KEY VALUE, get KEY"

expect 1 rk cache get nothing-here
[ -z "$out$err" ] || fail "a miss should print nothing, got '$out' / '$err'"
ok "a miss exits 1 quietly"

expect 0 rk cache del greeting
expect 1 rk cache get greeting
expect 0 rk cache del greeting
ok "del KEY, and del of a missing key succeeds"

# 1 MiB of random bytes (NULs included: about 4000 of them) with a NUL-led tail, through stdin
# and back.
head -c 1048576 /dev/urandom >"$TMP/blob"
printf '\0\0x\0\n\r\377' >>"$TMP/blob"
[ "$(tr -dc '\0' <"$TMP/blob" | wc -c)" -gt 3 ] || fail "the test value should contain NULs"
rk cache set blob <"$TMP/blob"
rk cache get blob >"$TMP/blob.out"
cmp "$TMP/blob" "$TMP/blob.out" || fail "binary value changed on its way through"
[ "$(rcli strlen "${PREFIX}blob")" = $((1048576 + 7)) ] || fail "stored length"
printf 'a\0b' | rk cache set nul
[ "$(rk cache get nul | od -An -c | tr -d ' ')" = 'a\0b' ] || fail "NUL in a short value"
printf 'from stdin' | rk cache set dash -
[ "$(rk cache get dash)" = "from stdin" ] || fail "VALUE '-' should read stdin"
rk cache set empty '' </dev/null
expect 0 rk cache get empty
[ "$(wc -c <"$TMP/out")" = 0 ] || fail "an empty value should come back empty"
ok "binary round trip through stdin/stdout, '-' and empty values"

expect 0 rk cache set ttl-key v --ttl 90s
pttl=$(rcli pttl "${PREFIX}ttl-key")
[ "$pttl" -gt 80000 ] && [ "$pttl" -le 90000 ] || fail "--ttl 90s gave a PTTL of $pttl"
expect 0 rk cache set forever v --ttl none
[ "$(rcli pttl "${PREFIX}forever")" = -1 ] || fail "--ttl none should store without expiry"
expect 0 rk cache set default v
pttl=$(rcli pttl "${PREFIX}default")
[ "$pttl" -gt 50000 ] && [ "$pttl" -le 60000 ] || fail "the default TTL should be 60s: $pttl"
expect 0 rk cache set short v --ttl 150ms
wait_for 10 bash -c '! "$0" --url "$1" --config "options.prefix=$2" cache get short >/dev/null' \
    "$REDKIT" "$URL" "$PREFIX"
ok "--ttl 90s, none, the default, and expiry"

expect 0 rk cache ttl ttl-key
[[ $out =~ ^[0-9]+ms$ ]] || fail "cache ttl should print milliseconds, got '$out'"
left=${out%ms}
[ "$left" -gt 80000 ] && [ "$left" -le 90000 ] || fail "cache ttl after --ttl 90s: $out"
expect 0 rk cache ttl forever
[ "$out" = none ] || fail "cache ttl of a key without expiry: '$out'"
expect 0 rk cache set again v --ttl "$(rk cache ttl ttl-key)"
expect 1 rk cache ttl nothing-here
[ -z "$out$err" ] || fail "a ttl miss should print nothing, got '$out' / '$err'"
ok "cache ttl prints the time left (usable as --ttl), none, or exits 1 on a miss"

# getopt_long conventions: "--" ends the options, short -t, --ttl=VALUE; days.
expect 0 rk cache set -- --key --value
expect 0 rk cache get -- --key
[ "$out" = --value ] || fail "'--' should let keys and values start with '-', got '$out'"
[ "$(rcli get "${PREFIX}--key")" = --value ] || fail "the key should be '--key'"
expect 0 rk cache set -t 90s short-t v
pttl=$(rcli pttl "${PREFIX}short-t")
[ "$pttl" -gt 80000 ] && [ "$pttl" -le 90000 ] || fail "-t 90s gave a PTTL of $pttl"
expect 0 rk cache set days v --ttl=2d
pttl=$(rcli pttl "${PREFIX}days")
[ "$pttl" -gt 172000000 ] && [ "$pttl" -le 172800000 ] || fail "--ttl=2d gave a PTTL of $pttl"
expect 0 rk cache set mixed v --ttl 1d12h
[ "$(rcli pttl "${PREFIX}mixed")" -gt 129000000 ] || fail "--ttl 1d12h"
ok "'--' before keys and values starting with '-'; -t, --ttl=VALUE; durations in days"

for k in a b c; do expect 0 rk cache set "many-$k" v; done
expect 0 rk cache del many-a many-b nothing-here -- many-c --key
for k in many-a many-b many-c --key; do
    [ "$(rcli exists "${PREFIX}$k")" = 0 ] || fail "cache del of several keys left $k"
done
ok "cache del takes several keys"

expect 0 rk cache ttl ttl-key --json
[[ $out =~ ^\{\"key\":\"ttl-key\",\"ttl_ms\":[0-9]+\}$ ]] || fail "cache ttl --json: '$out'"
expect 0 rk cache ttl forever --json
[ "$out" = '{"key":"forever","ttl_ms":null}' ] || fail "cache ttl --json without expiry: '$out'"
expect 0 rk cache set 'q"uote\' v
expect 0 rk cache ttl --json -- 'q"uote\'
[[ $out == '{"key":"q\"uote\\","ttl_ms":'* ]] || fail "the key should be JSON-escaped: '$out'"
expect 1 rk cache ttl nothing-here --json
[ -z "$out$err" ] || fail "a ttl --json miss should print nothing"
expect 64 rk cache get ttl-key --json
ok "cache ttl --json"

expect 64 rk cache get
expect 64 rk cache frob x
expect 64 rk cache set k v --ttl 10parsecs
contains "$err" "not a duration"
expect 64 rk cache set k v --ttl 0s
expect 64 rk cache get k --ttl 5s
expect 64 rk cache ttl
expect 64 rk cache get k extra
expect 64 rk cache get k --bogus
expect 64 rk cache get k -x
expect 64 rk cache set k v --ttl
contains "$err" "needs a value"
expect 65 rk cache get ''
contains "$err" "INVALID_ARGUMENT"
ok "usage errors exit 64, an empty key 65"
