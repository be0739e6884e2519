#!/usr/bin/env bash
# The library examples (examples/*.c) run against the fixture and print what they promise, and
# the README's snippets are excerpts of them: every run of lines between `...` markers occurs
# in the example, leading whitespace aside.
#   test_examples.sh REDKIT_BINARY EXAMPLES_DIR SOURCE_DIR
. "$(dirname "$0")/lib.sh"
EXAMPLES=${2:?usage: $0 REDKIT_BINARY EXAMPLES_DIR SOURCE_DIR}
README=${3:?usage: $0 REDKIT_BINARY EXAMPLES_DIR SOURCE_DIR}/README.md
SOURCES=$3/examples
socket="unix://$REDKIT_TEST_SOCKET"

expect 0 "$EXAMPLES/example_cache" "$socket"
contains "$out" "greeting = hello"
contains "$out" "greeting expires in "
contains "$out" "greeting removed"
ok "examples/cache.c: store, retrieve, ttl, remove"

expect 0 "$EXAMPLES/example_cache_json" "$socket"
[ "$out" = $'stored: "say \\"hi\\""\ntext: say "hi"\nanswer: 42' ] || fail "cache_json example: $out"
[ "$(rcli exists greeting answer)" = 0 ] || fail "the cache_json example should remove its keys"
ok "examples/cache_json.c: JSON text as the pip-services ports store it"

expect 0 "$EXAMPLES/example_lock" "$socket"
[ "$out" = $'lock held: generating the report\nlock released' ] || fail "lock example: $out"
[ "$(rcli exists report)" = 0 ] || fail "the lock example should release its lock"
ok "examples/lock.c: acquire and release"

rcli del query:user:42 >/dev/null
expect 0 "$EXAMPLES/example_memolock" "$socket"
[ "$out" = "result for user:42" ] || fail "memolock example: $out"
[ "$(rcli get query:user:42)" = "result for user:42" ] || fail "the value should be stored"
rcli del query:user:42 >/dev/null
ok "examples/memolock.c: computed and stored"

# The first ```c block after the README heading that names examples/NAME.c.
readme_block() {
    awk -v h="(\`examples/$1.c\`)" '
        /^#/ && index($0, h) { found = 1; next }
        found && /^```c/ { inside = 1; next }
        inside && /^```/ { exit }
        inside { print }' "$README"
}

strip() { sed 's/^[[:space:]]*//'; }

# check_excerpt NAME: every chunk of the README block occurs in examples/NAME.c.
check_excerpt() {
    local src chunk="" line n=0
    src=$(strip <"$SOURCES/$1.c")
    while IFS= read -r line || [ -n "$line" ]; do
        if [ "$line" = "..." ]; then
            [[ $src == *"$chunk"* ]] || fail "README's $1 snippet is not in examples/$1.c:"$'\n'"$chunk"
            chunk="" n=$((n + 1))
        else
            chunk+="${chunk:+$'\n'}$(strip <<<"$line")"
        fi
    done < <(readme_block "$1")
    [ -n "$chunk" ] || fail "no README snippet for examples/$1.c"
    [[ $src == *"$chunk"* ]] || fail "README's $1 snippet is not in examples/$1.c:"$'\n'"$chunk"
}

for name in cache cache_json lock memolock; do check_excerpt "$name"; done
ok "the README's library snippets are excerpts of examples/"
