#!/usr/bin/env bash
# A fresh machine, simulated: runs a command (default `npm test`) where the only programs are those of
# Debian's Essential packages (coreutils, dash, bash, tar, gzip, grep, sed, findutils, util-linux...)
# plus node, npm and npx. Every other tool this project's suites can use (redis-server, php, python3,
# ruby, java, chromium, nginx, wrk, buildah, podman, helm...) is gone, so each of those suites must skip
# with one `skipping: <tool> is not installed (Debian package <pkg>)` line, and nothing may fail.
#
#   test/fresh-machine.sh                      # npm test, then the summary
#   test/fresh-machine.sh npx vitest run test/store
#   SESSIONGATE_REQUIRE_ALL=1 test/fresh-machine.sh   # must fail: CI forbids skipping
#
# How: a private mount namespace (unshare; root, or an unprivileged user namespace) whose /usr/bin and
# /usr/sbin are a tmpfs holding links to just those programs, and whose /usr/local/{bin,sbin} are empty.
# Hiding programs, not PATH entries, also hides the ones suites find by absolute path (/usr/bin/python3,
# /usr/bin/chromium, /usr/bin/java, /usr/bin/rackup). The environment is emptied (env -i) but for HOME
# (npm's own settings), and TMPDIR is a new empty dir (no cached Helm or container image).
# `npm ci` is not run here: node_modules may be a link to another checkout's, which it would replace.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -gt 0 ] || set -- npm test

if [ "${SG_FRESH_INSIDE:-}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then ns=(unshare --mount --propagation private)
  else ns=(unshare --user --map-root-user --mount --propagation private); fi
  exec env SG_FRESH_INSIDE=1 "${ns[@]}" bash "$0" "$@"
fi

# --- inside the namespace ------------------------------------------------------------------------------
work="$(mktemp -d /tmp/sg-fresh-machine.XXXXXX)"
log="$work/output.log"
hidden=(/usr/bin /usr/sbin /usr/local/bin /usr/local/sbin)
mkdir -p "$work/tmp"

# The programs of the Essential packages, by name, and where each really is (resolved before hiding).
allowed=()
if command -v dpkg-query >/dev/null; then
  for pkg in $(dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" { print $1 }'); do
    while read -r f; do
      case "$f" in /bin/* | /usr/bin/* | /sbin/* | /usr/sbin/*) allowed+=("$(basename "$f")") ;; esac
    done < <(dpkg -L "$pkg" 2>/dev/null)
  done
else
  allowed+=(sh bash env cat cp mv rm ln ls mkdir mktemp rmdir chmod touch head tail tr cut sort uniq wc
    tee dirname basename readlink realpath id uname date sleep kill true false test expr grep sed find
    xargs tar gzip gunzip diff)
fi

declare -A target
for name in "${allowed[@]}"; do
  for dir in /usr/bin /usr/sbin; do
    if [ -e "$dir/$name" ] && [ -z "${target[$dir/$name]:-}" ]; then
      target[$dir/$name]="$(readlink -f "$dir/$name")"
    fi
  done
done
# Node wherever it was installed (a Debian package, NodeSource, a tarball in /usr/local), into /usr/bin.
for name in node npm npx; do target[/usr/bin/$name]="$(readlink -f "$(command -v "$name")")"; done

for dir in "${hidden[@]}"; do [ -d "$dir" ] && mkdir -p "$work/real$dir" && mount --bind "$dir" "$work/real$dir"; done
# From here on mount, ln and the rest come from the saved views.
PATH="$work/real/usr/bin:$work/real/usr/sbin:$work/real/bin"
for dir in "${hidden[@]}"; do [ -d "$dir" ] && mount -t tmpfs -o mode=0755 tmpfs "$dir"; done
for link in "${!target[@]}"; do
  real="${target[$link]}"
  # A program that lived in a hidden dir is reached through the saved view of that dir.
  for dir in "${hidden[@]}"; do
    case "$real" in "$dir"/*) real="$work/real$real" && break ;; esac
  done
  ln -s "$real" "$link"
done
PATH=/usr/bin:/usr/sbin

echo "fresh machine: $(ls /usr/bin | wc -l) programs in /usr/bin ($(node --version), npm $(npm --version)); running: $*"
cd "$root"
set +e
env -i HOME="$HOME" PATH=/usr/bin:/usr/sbin TMPDIR="$work/tmp" LANG=C.UTF-8 TERM=dumb \
  ${SESSIONGATE_REQUIRE_ALL:+SESSIONGATE_REQUIRE_ALL="$SESSIONGATE_REQUIRE_ALL"} "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

echo
echo "=== fresh machine summary (full output: $log) ==="
grep -E '^ +(Test Files|Tests) ' "$log" | sed 's/\x1b\[[0-9;]*m//g' || true
skips="$(grep -oE 'skipping: .*' "$log" | sed 's/\x1b\[[0-9;]*m//g' | sort | uniq -c | sort -rn || true)"
echo "skip lines: $(grep -c 'skipping: ' "$log" || true) in all, $(printf '%s' "$skips" | grep -c . || true) different:"
printf '%s\n' "$skips"
# A test file that skipped tests must have printed a skip line (vitest heads its output `stderr | <file>`).
silent="$(node -e '
  const text = require("fs").readFileSync(process.argv[1], "utf8").replace(/\x1b\[[0-9;]*m/g, "");
  const said = new Set();
  const skipped = new Set();
  let file;
  for (const line of text.split("\n")) {
    const head = /^std(?:err|out) \| (\S+)/.exec(line);
    if (head) file = head[1];
    else if (line.startsWith("skipping: ") && file) said.add(file);
    const result = /^ ([\u2713\u2193\u00d7\u276f]) (test\/\S+) \((.*)\)/.exec(line);
    if (result && (result[1] === "\u2193" || / skipped$/.test(result[3]))) skipped.add(result[2]);
  }
  for (const f of skipped) if (!said.has(f)) console.log(f);
' "$log")"
if [ -n "$silent" ]; then
  echo "files that skipped tests without a skip line:"
  printf '  %s\n' $silent
  [ "$status" != 0 ] || status=1
else
  echo "every file that skipped tests printed a skip line"
fi
rm -rf "$work/tmp"
echo "exit status: $status"
exit "$status"
