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
#
# One route per MCP service, from the variables the services read: every
# MCP_<NAME>_ENABLED=true (also 1, yes, on) in the environment is a service,
# and the lines between `#@ each service` and `#@ end` are written once per
# service (sorted by name) with ${SERVICE_PATH} = <name> lower-cased with '-'
# for '_' (as gateway_common::config::service_url writes it: MCP_ECHO_STATELESS
# -> echo-stateless) and ${SERVICE_UPSTREAM} = MCP_<NAME>_UPSTREAM (host:port,
# required for each enabled service). Lines between `#@ single NAME` and
# `#@ end` (the one-upstream /mcp route) are written when NAME is set or no
# service is enabled, so a render without MCP_*_ENABLED is what it always was.
# Marker lines are not written.
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
function emit(line,    list, rest, name, count, items, i) {
    list = ""
    rest = line
    while (match(rest, /\$\{[A-Z][A-Z0-9_]*\}/)) {
        name = substr(rest, RSTART + 2, RLENGTH - 3)
        rest = substr(rest, RSTART + RLENGTH)
        if (!(name in ENVIRON) || ENVIRON[name] ~ /^[ \t]*$/) {
            if (!(name in missing)) { missing[name] = 1; missed = missed " " name }
            continue
        }
        if (name ~ /_(ADDRS|URLS)$/) list = name
    }
    if (list == "") { lines[++n] = fill(line, "", ""); return }
    count = split(ENVIRON[list], items, /[ ,\t]+/)
    for (i = 1; i <= count; i++) if (items[i] != "") lines[++n] = fill(line, list, items[i])
}
{ tpl[++t] = $0 }
END {
    # The enabled services, sorted (the same words parse_bool accepts).
    ns = 0
    for (k in ENVIRON) {
        if (k !~ /^MCP_[A-Z0-9_]+_ENABLED$/) continue
        v = tolower(ENVIRON[k])
        gsub(/^[ \t]+|[ \t]+$/, "", v)
        if (v ~ /^(1|true|yes|on)$/) svc[++ns] = substr(k, 5, length(k) - 12)
        else if (v !~ /^(|0|false|no|off)$/) bad = bad " " k "=" ENVIRON[k]
    }
    for (i = 2; i <= ns; i++)
        for (j = i; j > 1 && svc[j - 1] > svc[j]; j--) { s = svc[j]; svc[j] = svc[j - 1]; svc[j - 1] = s }
    for (i = 1; i <= t; i++) {
        if (tpl[i] ~ /^[ \t]*#@ (each service|single [A-Z][A-Z0-9_]*)[ \t]*$/) {
            head = tpl[i]
            sub(/^[ \t]*#@ /, "", head)
            sub(/[ \t]*$/, "", head)
            nb = 0
            for (i++; i <= t && tpl[i] !~ /^[ \t]*#@ end[ \t]*$/; i++) block[++nb] = tpl[i]
            if (i > t) { printf "%s: \"#@ %s\" without \"#@ end\"\n", template, head > "/dev/stderr"; exit 2 }
            if (head == "each service") {
                for (s = 1; s <= ns; s++) {
                    path = tolower(svc[s])
                    gsub(/_/, "-", path)
                    for (b = 1; b <= nb; b++) {
                        line = block[b]
                        gsub(/\$\{SERVICE_PATH\}/, path, line)
                        gsub(/\$\{SERVICE_UPSTREAM\}/, "${MCP_" svc[s] "_UPSTREAM}", line)
                        emit(line)
                    }
                }
            } else {
                name = substr(head, 8)
                if (ns == 0 || ((name in ENVIRON) && ENVIRON[name] !~ /^[ \t]*$/))
                    for (b = 1; b <= nb; b++) emit(block[b])
            }
            continue
        }
        emit(tpl[i])
    }
    if (bad != "") {
        printf "%s: MCP_<NAME>_ENABLED must be true or false:%s\n", template, bad > "/dev/stderr"
        exit 1
    }
    if (missed != "") {
        printf "%s: unset variables:%s\n", template, missed > "/dev/stderr"
        exit 1
    }
    for (i = 1; i <= n; i++) print lines[i]
}' "$1"
