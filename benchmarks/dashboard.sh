#!/usr/bin/env bash
# Record asv results for the last N commits of main (or a given range), publish the HTML
# dashboard and print where it is.
#
#   benchmarks/dashboard.sh              # the last 5 commits of main, the dashboard set
#   benchmarks/dashboard.sh -n 10        # the last 10
#   benchmarks/dashboard.sh -r v0.1..main -b 'bench_ratios' --quick
#   benchmarks/dashboard.sh --all        # every benchmark (about 11 min per commit, 2 cores)
#
# Options:
#   -n N        the last N commits of the branch (default 5)
#   -B BRANCH   the branch (default main; the dashboard shows the branches of asv.conf.json)
#   -r RANGE    a git range instead (anything `git rev-list` takes, e.g. HEAD~5..HEAD)
#   -b REGEX    benchmarks to run (asv --bench; repeatable); default: the dashboard set below
#   --all       every benchmark of the suite
#   --quick     each benchmark once (asv --quick): faster, noisier, fine for a first look
#   --force     rerun benchmarks that already have results (default: only the missing ones)
#   --no-run    only publish what .asv/results holds
#   --offline   make the page open without the internet: asv loads jQuery, Flot and Bootstrap
#               from CDNs; this copies Debian's packages of them next to it
#               (tools/asv_offline.py; apt-get install libjs-jquery libjs-jquery-flot
#               libjs-bootstrap libjs-jquery-stupidtable node-blueimp-md5)
#
# asv builds one virtualenv (asv.conf.json's matrix) and installs each commit's wheel into it,
# with packages from pip's configured index. Results go to .asv/results, the HTML to .asv/html.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard set: the figures that survive a noisy machine (ratios measured side by side,
# peak memory), plus one absolute step time and one minimize time for contrast. Kept small so
# a commit takes about a minute on a 2-core machine.
DEFAULT_BENCH=(
    '^bench_ratios\.'
    "^bench_minimize\.Scale\.(track_|peakmem_).*\(1000000, 'float64'\)"
    "^bench_minimize\.Scale\.time_minimize_5_iterations\(1000000, 'float64'\)"
)

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

count=5 branch=main range="" run=1 all=0 skip=1 offline=0 bench=() extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) count="$2"; shift 2 ;;
        -B) branch="$2"; shift 2 ;;
        -r) range="$2"; shift 2 ;;
        -b) bench+=("$2"); shift 2 ;;
        --all) all=1; shift ;;
        --quick) extra+=(--quick); shift ;;
        --force) skip=0; shift ;;
        --no-run) run=0; shift ;;
        --offline) offline=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "dashboard.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done
case "$count" in ''|*[!0-9]*|0) echo "dashboard.sh: -n takes a positive count" >&2; exit 2 ;; esac

# asv from the project's venv if there is one, else from PATH.
ASV="${ASV:-}"
if [ -z "$ASV" ]; then
    if [ -x .venv/bin/asv ]; then ASV=.venv/bin/asv; else ASV=asv; fi
fi
command -v "$ASV" >/dev/null || { echo "dashboard.sh: asv not found (pip install -e '.[bench]')" >&2; exit 1; }

if [ "$run" = 1 ]; then
    [ -f "$HOME/.asv-machine.json" ] || "$ASV" machine --yes
    if [ -z "$range" ]; then
        total=$(git rev-list --count --first-parent "$branch")
        [ "$count" -le "$total" ] || count=$total
        # The last `count` commits: BRANCH~count..BRANCH, or all of them when that is the root.
        if [ "$count" -lt "$total" ]; then range="$branch~$count..$branch"; else range="$branch"; fi
    fi
    [ "$skip" = 0 ] || extra+=(--skip-existing)
    selection=()
    if [ "$all" = 0 ]; then
        [ ${#bench[@]} -gt 0 ] || bench=("${DEFAULT_BENCH[@]}")
        for b in "${bench[@]}"; do selection+=(--bench "$b"); done
    fi
    echo "dashboard.sh: asv run ${extra[*]} $range ($(git rev-list --count --first-parent "$range") commits)"
    started=$(date +%s)
    # asv exits non-zero when a benchmark fails at some commit; publish what was recorded.
    "$ASV" run --show-stderr ${extra[@]+"${extra[@]}"} ${selection[@]+"${selection[@]}"} \
        "$range" || echo "dashboard.sh: asv run reported failures (see above); publishing anyway"
    echo "dashboard.sh: recorded in $(( $(date +%s) - started )) s"
fi

"$ASV" publish
html=$(python3 -c 'import json; print(json.load(open("asv.conf.json")).get("html_dir", "html"))')
[ "$offline" = 0 ] || python3 tools/asv_offline.py "$html"
echo
echo "Dashboard: $(cd "$html" && pwd)/index.html"
echo "View it:   $ASV preview   (serves it on http://127.0.0.1:8080; browsers refuse the"
echo "           page's data from file://, so open it through the server)"
