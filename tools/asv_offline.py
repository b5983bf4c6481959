"""Make a published asv dashboard open without the internet.

asv's ``index.html`` loads jQuery, Flot, Bootstrap, stupidtable and blueimp-md5 from CDNs;
without a connection the page shows only "Can not determine continental origin of
swallow". This replaces those tags by copies of Debian's packaged libraries (``apt-get
install libjs-jquery libjs-jquery-flot libjs-bootstrap libjs-jquery-stupidtable
node-blueimp-md5``), copied into ``HTML_DIR/vendor``::

    python tools/asv_offline.py .asv/html

Debian ships Flot 4 as one file with its plugins (time, selection, categories, axis labels)
built in, where asv asks for Flot 0.8.3 and each plugin apart, so asv's own axis-label
plugin is left out too (both would draw each label) and Flot 4's SVG legend gets the white
background Flot 0.8's had (a style rule; without one it is black). The bar-order plugin
(used only to place side-by-side bars of categorical parameters) has no Debian package and
is left out. The page's own scripts are asv's, unchanged.
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

DEBIAN = Path("/usr/share/javascript")

# The last part of a CDN address in asv's index.html -> the Debian file that provides it.
PROVIDERS = {
    "jquery-3.3.1.min.js": "jquery/jquery.min.js",
    "jquery.flot.min.js": "jquery-flot/jquery.flot.min.js",
    "stupidtable.min.js": "jquery-stupidtable/stupidtable.min.js",
    "md5.min.js": "blueimp-md5/md5.min.js",
    "bootstrap.min.js": "bootstrap/js/bootstrap.min.js",
    "bootstrap.min.css": "bootstrap/css/bootstrap.min.css",
}
# Plugins already inside Debian's jquery.flot.min.js, and the one with no package: dropped.
DROPPED = {"jquery.flot.time.min.js", "jquery.flot.selection.min.js",
           "jquery.flot.categories.min.js", "jquery.flot.orderBars.js"}

# asv's axis-label plugin for Flot 0.8 (Flot 4 has its own).
ASV_AXISLABELS = re.compile(r'<script[^>]*\bsrc="jquery\.flot\.axislabels\.js"[^>]*>\s*</script>')
LEGEND_STYLE = ("<style>.legendLayer .background { fill: rgba(255, 255, 255, 0.85); "
                "stroke: rgba(0, 0, 0, 0.85); stroke-width: 1; }</style>")
REMOTE_TAG = re.compile(
    r'<script[^>]*\bsrc="(https?://[^"]+)"[^>]*>\s*</script>'
    r'|<link[^>]*\bhref="(https?://[^"]+\.css)"[^>]*>')


def local_tag(name):
    """The tag that loads ``vendor/<name>`` (a stylesheet for ``.css``, else a script)."""
    if name.endswith(".css"):
        return f'<link rel="stylesheet" href="vendor/{name}">'
    return f'<script src="vendor/{name}"></script>'


def make_offline(html_dir, source=DEBIAN):
    """Rewrite ``html_dir/index.html`` to load its libraries from ``html_dir/vendor``.

    Parameters
    ----------
    html_dir : path-like
        The directory ``asv publish`` wrote (``html_dir`` of asv.conf.json).
    source : path-like
        Where the packaged libraries are (Debian's ``/usr/share/javascript``).

    Returns
    -------
    list of str
        The files copied into ``vendor``.

    Raises
    ------
    FileNotFoundError
        A library is not installed under ``source`` (the message names the package).
    ValueError
        ``index.html`` asks for a library this script does not know (a newer asv).
    """
    html_dir, source = Path(html_dir), Path(source)
    index = html_dir / "index.html"
    page = index.read_text()
    vendor = html_dir / "vendor"
    copied = []

    def replace(match):
        url = match.group(1) or match.group(2)
        name = url.rsplit("/", 1)[1]
        if name in DROPPED:
            return ""
        if name not in PROVIDERS:
            raise ValueError(f"{index} loads {url}, which {__file__} has no local copy for")
        path = source / PROVIDERS[name]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (apt-get install libjs-jquery "
                                    "libjs-jquery-flot libjs-bootstrap libjs-jquery-stupidtable "
                                    "node-blueimp-md5)")
        vendor.mkdir(exist_ok=True)
        shutil.copyfile(path, vendor / name)
        copied.append(name)
        return local_tag(name)

    page = ASV_AXISLABELS.sub("", REMOTE_TAG.sub(replace, page))
    if copied and LEGEND_STYLE not in page:
        page = page.replace("</head>", LEGEND_STYLE + "\n</head>", 1)
    index.write_text(page)
    return copied


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", help="the directory asv publish wrote")
    parser.add_argument("--source", default=str(DEBIAN),
                        help="where the packaged libraries are (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        copied = make_offline(args.html_dir, args.source)
    except (FileNotFoundError, ValueError) as e:
        print(f"asv_offline: {e}", file=sys.stderr)
        return 1
    print(f"asv_offline: {Path(args.html_dir) / 'index.html'} loads {', '.join(copied)} "
          "from vendor/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
