#!/bin/sh
# Fills a config template from the environment: deploy/render.sh TEMPLATE > FILE
#
# Only ${NAME} placeholders with an upper-case NAME are replaced, so nginx's own
# variables ($host, $upstream_http_x_user_id, ${var}) pass through untouched
# (plain `envsubst` would empty them). A placeholder whose variable is unset or
# empty stops the render with the names of every missing variable (exit 1) and
# writes nothing. A line holding a placeholder whose name ends in _ADDRS or
# _URLS is written once per item of its value (items separated by spaces or
# commas): one `server` line per verifier replica, one `- url:` per server.
set -eu
if [ "$#" -ne 1 ] || [ ! -r "$1" ]; then
    echo "usage: $0 TEMPLATE > FILE (placeholders from the environment)" >&2
    exit 2
fi
exec awk -v template="$1" '
function fill(text, list, item,    out, name) {
    out = ""
    while (match(text, /\$\{[A-Z][A-Z0-9_]*\}/)) {
        name = substr(text, RSTART + 2, RLENGTH - 3)
        out = out substr(text, 1, RSTART - 1) (name == list ? item : ENVIRON[name])
        text = substr(text, RSTART + RLENGTH)
    }
    return out text
}
{
    list = ""
    rest = $0
    while (match(rest, /\$\{[A-Z][A-Z0-9_]*\}/)) {
        name = substr(rest, RSTART + 2, RLENGTH - 3)
        rest = substr(rest, RSTART + RLENGTH)
        if (!(name in ENVIRON) || ENVIRON[name] ~ /^[ \t]*$/) {
            if (!(name in missing)) { missing[name] = 1; missed = missed " " name }
            continue
        }
        if (name ~ /_(ADDRS|URLS)$/) list = name
    }
    if (list == "") { lines[++n] = fill($0, "", ""); next }
    count = split(ENVIRON[list], items, /[ ,\t]+/)
    for (i = 1; i <= count; i++) if (items[i] != "") lines[++n] = fill($0, list, items[i])
}
END {
    if (missed != "") {
        printf "%s: unset variables:%s\n", template, missed > "/dev/stderr"
        exit 1
    }
    for (i = 1; i <= n; i++) print lines[i]
}' "$1"
