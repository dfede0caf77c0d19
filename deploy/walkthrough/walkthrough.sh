#!/usr/bin/env bash
# Walks the README's "Running a three-node cluster by hand" exactly as
# written: the shell block between the walkthrough markers of README.md
# runs unchanged (init, token, join, run, sign in, apply a profile, issue,
# kill the leader, issue again). Where a person would use a browser, a
# stand-in xdg-open on the PATH hands the sign-in address to
# deploy/local/signin.py, which signs in at the demo identity provider as
# demo (for ferryctl) or alice (for ferry) and answers TOTP.
#
# Needs: Go, make, curl, openssl, python3. No root: everything is on
# loopback, on the README's ports (5556, 7001-7003, 8001-8003, 9001-9003).
# Run from anywhere: deploy/walkthrough/walkthrough.sh
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="$(mktemp -d -t ferry-walkthrough.XXXXXX)"
WALK_PID=""

cleanup() {
	local rc=$?
	if [[ -n $WALK_PID ]]; then
		kill -TERM -- "-$WALK_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 -- "-$WALK_PID" 2>/dev/null || break; sleep 0.2; done
		kill -KILL -- "-$WALK_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 ]]; then
		echo "--- walkthrough failed (exit $rc); node logs:" >&2
		for f in "$STATE"/tmp/tmp.*/n*.log "$STATE/browser.log"; do
			[[ -f $f ]] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
		done
	fi
	rm -rf "$STATE"
	exit "$rc"
}
trap cleanup EXIT
trap "exit 143" TERM INT

# The README's block, as written.
awk '/<!-- walkthrough:begin -->/{on=1; next} /<!-- walkthrough:end -->/{on=0} on && /^```/{fence=!fence; next} on && fence' \
	"$REPO/README.md" >"$STATE/walkthrough.sh"
[[ -s $STATE/walkthrough.sh ]] || { echo "no walkthrough block in README.md" >&2; exit 1; }

# The stand-in browser.
mkdir -p "$STATE/bin" "$STATE/home" "$STATE/tmp" "$STATE/browser"
cat >"$STATE/bin/xdg-open" <<BROWSER
#!/usr/bin/env bash
case "\$(cat /proc/\$PPID/comm)" in
ferryctl) user=demo ;;
*) user=alice ;;
esac
python3 "$REPO/deploy/local/signin.py" --state-dir "$STATE/browser" --ca "\$PWD/n1/tls/ca.crt" "\$1" "\$user" "\$user" \
	>>"$STATE/browser.log" 2>&1 </dev/null &
BROWSER
chmod +x "$STATE/bin/xdg-open"

cd "$REPO"
export PATH="$STATE/bin:$PATH" HOME="$STATE/home" XDG_CONFIG_HOME="$STATE/home/.config" TMPDIR="$STATE/tmp"
# Its own process group, so that cleanup stops every node it started.
setsid bash -euo pipefail -x "$STATE/walkthrough.sh" &
WALK_PID=$!
wait "$WALK_PID"
echo "walkthrough: OK"
