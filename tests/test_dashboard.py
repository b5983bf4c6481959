"""A published asv dashboard renders in a real headless browser (Debian's Chromium).

A tiny git repository gets a few commits and asv results for them, written in asv's results
format (version 2) with values that rise commit by commit; ``asv publish`` makes the HTML,
``tools/asv_offline.py`` makes it load its libraries locally (no network), and it is served
on 127.0.0.1 as ``asv preview`` would. Chromium then loads the grid, the benchmark list and
one benchmark's graph; the graph's screenshot is kept in the test's temporary directory.

Skips, saying why, where asv, Chromium or Debian's JavaScript libraries are missing
(``.ci/run`` installs Chromium and the libraries where it runs as root with apt-get).
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import asv_offline  # noqa: E402

MACHINE = "testbox"
ENV = "virtualenv-py3.11"
TRACK = "bench_fake.Ratios.track_step_over_floor"
TIME = "bench_fake.time_step"
COMMITS = 5
WINDOW = (1200, 800)


def asv_command():
    """The ``asv`` next to this Python, or on PATH; skips without one."""
    beside = Path(sys.executable).with_name("asv")
    found = str(beside) if beside.exists() else shutil.which("asv")
    if found is None:
        pytest.skip("asv is not installed (pip install -e '.[test]')")
    return found


def chromium_command():
    """Debian's Chromium; skips, naming the package, without it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium to open the dashboard in (apt-get install chromium)")


def require_debian_js():
    """Skip unless Debian's copies of the libraries asv's page loads are installed."""
    missing = [p for p in asv_offline.PROVIDERS.values() if not (asv_offline.DEBIAN / p).is_file()]
    if missing:
        pytest.skip(f"Debian's JavaScript libraries are missing ({', '.join(missing)}): "
                    "apt-get install libjs-jquery libjs-jquery-flot libjs-bootstrap "
                    "libjs-jquery-stupidtable node-blueimp-md5")


def make_repo(path, count=COMMITS):
    """A git repository at ``path`` with ``count`` commits a day apart; their hashes, oldest
    first."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")

    def git(*args, **extra):
        return subprocess.run(["git", *args], cwd=path, env=dict(env, **extra), check=True,
                              capture_output=True, text=True).stdout

    path.mkdir()
    git("init", "-q", "-b", "main")
    for i in range(count):
        (path / "file.txt").write_text(f"{i}\n")
        git("add", "file.txt")
        date = f"2026-01-{i + 1:02d}T12:00:00+00:00"
        git("commit", "-q", "-m", f"commit {i}", GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return git("rev-list", "--reverse", "main").split()


def benchmark_entries():
    """``benchmarks.json`` entries: a parameterised ratio track and an unparameterised time."""
    return {
        TRACK: {"code": "def track_step_over_floor(self, variant): ...", "name": TRACK,
                "param_names": ["variant"], "params": [["'plain'", "'momentum'"]],
                "type": "track", "unit": "ratio", "version": "1"},
        TIME: {"code": "def time_step(): ...", "name": TIME, "param_names": [], "params": [],
               "type": "time", "unit": "seconds", "number": 0, "repeat": 0, "min_run_count": 2,
               "sample_time": 0.01, "warmup_time": -1, "rounds": 2, "timeout": 60,
               "version": "1"},
    }


def result_file(commit, index):
    """One commit's results (asv's format 2): values that rise with ``index``."""
    return {
        "commit_hash": commit, "env_name": ENV, "date": 1767268800000 + index * 86400000,
        "params": {"machine": MACHINE, "python": "3.11"}, "python": "3.11",
        "requirements": {}, "env_vars": {},
        "result_columns": ["result", "params", "version", "started_at", "duration"],
        "results": {
            TRACK: [[1.0 + 0.25 * index, 1.5 + 0.25 * index], [["'plain'", "'momentum'"]], "1",
                    0, 1.0],
            TIME: [[0.001 * (1 + index)], [], "1", 0, 1.0],
        },
        "durations": {}, "version": 2,
    }


def write_results(repo, commits):
    """asv.conf.json, benchmarks.json, machine.json and a results file per commit."""
    conf = {"version": 1, "project": "rmsopt-fixture", "repo": ".", "branches": ["main"],
            "environment_type": "virtualenv", "benchmark_dir": "benchmarks",
            "results_dir": "results", "html_dir": "html"}
    (repo / "asv.conf.json").write_text(json.dumps(conf))
    machine_dir = repo / "results" / MACHINE
    machine_dir.mkdir(parents=True)
    (repo / "results" / "benchmarks.json").write_text(
        json.dumps({**benchmark_entries(), "version": 2}))
    (machine_dir / "machine.json").write_text(json.dumps({"machine": MACHINE, "version": 1}))
    for i, commit in enumerate(commits):
        name = f"{commit[:8]}-{ENV}.json"
        (machine_dir / name).write_text(json.dumps(result_file(commit, i)))


@contextmanager
def serve(directory):
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def chromium(browser, url, *args):
    """Run headless Chromium on ``url`` with ``args``; its stdout."""
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}",
         "--virtual-time-budget=15000", *args, url],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def colored_pixels(png):
    """Rows and columns of strongly coloured pixels (series lines; not grey grid or text)."""
    import matplotlib.image
    import numpy as np

    rgb = matplotlib.image.imread(png)[..., :3]
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    return np.nonzero(saturation > 0.3)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """The published, offline-capable dashboard's directory and the browser to open it."""
    asv, browser = asv_command(), chromium_command()
    require_debian_js()
    root = tmp_path_factory.mktemp("dashboard")
    repo = root / "repo"
    write_results(repo, make_repo(repo))
    out = subprocess.run([asv, "publish"], cwd=repo, capture_output=True, text=True,
                         env=dict(os.environ, HOME=str(root)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert asv_offline.make_offline(repo / "html")
    return repo / "html", browser


def test_offline_page_loads_nothing_remote(dashboard):
    html, _ = dashboard
    page = (html / "index.html").read_text()
    assert "<script src=\"https://" not in page and 'href="https://cdn' not in page
    assert (html / "vendor" / "jquery.flot.min.js").is_file()


def test_grid_lists_every_benchmark_with_a_plot(dashboard):
    html, browser = dashboard
    with serve(html) as url:
        dom = chromium(browser, f"{url}/index.html", "--dump-dom")
    assert "continental origin of swallow" not in dom  # asv's "a library failed to load"
    assert dom.count('class="btn benchmark-container"') == 2, dom[-3000:]
    assert "Ratios.track_step_over_floor" in dom and "time_step" in dom
    assert dom.count('class="flot-base"') >= 2  # a thumbnail's canvas per benchmark


def test_benchmark_list_is_populated(dashboard):
    html, browser = dashboard
    with serve(html) as url:
        dom = chromium(browser, f"{url}/index.html#/summarylist", "--dump-dom")
    for name in ("track_step_over_floor", "time_step"):
        assert name in dom, dom[-3000:]
    assert "'plain'" in dom and "'momentum'" in dom  # one row per parameter


def test_graph_is_drawn_and_rises_with_the_data(dashboard, tmp_path):
    """The graph of the ratio track: coloured series lines across the plot area, higher on
    the right (the values rise from the first commit to the last)."""
    html, browser = dashboard
    png = tmp_path / "dashboard-graph.png"
    with serve(html) as url:
        chromium(browser, f"{url}/index.html#{TRACK}", f"--screenshot={png}")
    assert png.stat().st_size > 0
    rows, cols = colored_pixels(png)
    # The main plot: right of the 200-px sidebar, below the navigation bar, above the overview.
    inside = (cols > 300) & (cols < WINDOW[0] - 40) & (rows > 110) & (rows < 660)
    rows, cols = rows[inside], cols[inside]
    assert rows.size > 500, f"the graph area is blank ({rows.size} coloured pixels): {png}"
    left, right = rows[(cols > 330) & (cols < 450)], rows[cols > WINDOW[0] - 200]
    assert left.size and right.size, f"the lines do not cross the plot: {png}"
    assert left.mean() > right.mean() + 50, f"the lines do not rise: {png}"


PAGE = ('<html><head>\n<script src="https://code.jquery.com/jquery-3.3.1.min.js" '
        'integrity="sha256-x" onerror="js_load_failure()"></script>\n'
        '<script src="https://cdn.example/flot/0.8.3/jquery.flot.time.min.js"></script>\n'
        '<script language="javascript" type="text/javascript" src="jquery.flot.axislabels.js">'
        '</script>\n<link rel="stylesheet" href="https://cdn.example/css/bootstrap.min.css" '
        'integrity="sha256-y">\n</head><body></body></html>')


def fake_source(path):
    """A directory laid out like /usr/share/javascript, each file naming itself."""
    for rel in asv_offline.PROVIDERS.values():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(f"/* {rel} */")
    return path


def test_offline_rewrites_remote_tags_to_vendor_copies(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(PAGE)
    source = fake_source(tmp_path / "js")
    copied = asv_offline.make_offline(html, source)
    page = (html / "index.html").read_text()
    assert copied == ["jquery-3.3.1.min.js", "bootstrap.min.css"]
    assert "https://" not in page and "integrity" not in page and "axislabels" not in page
    assert '<script src="vendor/jquery-3.3.1.min.js"></script>' in page
    assert '<link rel="stylesheet" href="vendor/bootstrap.min.css">' in page
    assert (html / "vendor" / "jquery-3.3.1.min.js").read_text() == "/* jquery/jquery.min.js */"
    assert page.count(asv_offline.LEGEND_STYLE) == 1
    # A second run finds nothing left to replace and leaves the page as it was.
    assert asv_offline.make_offline(html, source) == []
    assert (html / "index.html").read_text() == page


def test_offline_refuses_an_unknown_library_and_names_a_missing_package(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text('<script src="https://cdn.example/new-lib.js"></script>')
    with pytest.raises(ValueError, match="new-lib.js"):
        asv_offline.make_offline(html, fake_source(tmp_path / "js"))
    (html / "index.html").write_text(PAGE)
    with pytest.raises(FileNotFoundError, match="apt-get install libjs-jquery"):
        asv_offline.make_offline(html, tmp_path / "empty")
    assert "https://code.jquery.com" in (html / "index.html").read_text()  # left unchanged
