"""The HTML report in a real browser: headless Chromium renders it, the path drawing is there and
leads the page, and every figure it draws equals the JSON report's.

Run by ci/test.sh: `python -m pytest tests/python`. Needs the `tcptape` binary (built by cargo;
override with TCPTAPE) and Debian's `chromium`. Without chromium the tests skip, saying so, unless
TCPTAPE_E2E_REQUIRED=1 (ci/test.sh as root), where they fail. With TCPTAPE_DOCS_SCREENSHOT=PATH,
the screenshot of the bundled sample is also saved there (the README's picture is made so).
"""

import html.parser
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess
import zlib

import pytest
from tcptape_bins import analyzer, unavailable

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The colour of the hop that takes most time (analyzer/src/report/render/path_drawing.rs).
DOMINANT = (0xD6, 0x27, 0x28)
UNITS = {"ns": 1, "µs": 1e3, "ms": 1e6, "s": 1e9}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    unavailable("chromium is not installed (apt-get install chromium): the HTML report is not checked")


def browser(*args) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-dev-shm-usage", *args]
    out = subprocess.run(cmd, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out


def reports(tmp_path, recs):
    """(HTML path, JSON report) of the same recordings."""
    page = tmp_path / "report.html"
    run = [analyzer(), "report", "-q", *recs]
    subprocess.run(run + ["--format", "html", "-o", str(page)], check=True)
    out = subprocess.run(run + ["--format", "json"], check=True, capture_output=True, text=True)
    return page, json.loads(out.stdout)


class Dom(html.parser.HTMLParser):
    """The parts of the rendered page the checks read."""

    def __init__(self):
        super().__init__()
        self.stack = []  # open elements: (tag, attrs)
        self.figures = []  # (data-json, text)
        self.histograms = []  # (aria-label, title text, [data-count])
        self.lanes = 0
        self.stack_segments = 0
        self.path_text = []  # text in #path outside the figures
        self.order = []  # ids and section headings, in document order
        self.tables = []  # [[cells]]
        self._figure = None
        self._title = False

    def inside(self, cls=None, id=None):
        return any((cls is None or cls in a.get("class", "").split()) and
                   (id is None or a.get("id") == id) for _, a in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("br", "meta", "img", "hr", "input", "link"):  # void elements
            self.stack.append((tag, a))
        if a.get("id"):
            self.order.append("#" + a["id"])
        if "data-json" in a:
            self._figure = [a["data-json"], ""]
        cls = a.get("class", "").split()
        if "lane" in cls:
            self.lanes += 1
        if tag == "span" and self.stack[-2:-1] and "stack" in self.stack[-2][1].get("class", ""):
            self.stack_segments += 1
        if tag == "svg" and "hist" in cls:
            self.histograms.append([a.get("aria-label"), "", []])
        if tag == "rect" and self.histograms and self.inside(cls="hist"):
            self.histograms[-1][2].append(int(a["data-count"]))
        if tag == "text" and "t" in cls and self.inside(cls="hist"):
            self._title = True
        if tag == "table":
            self.tables.append([])
        if tag == "tr" and self.tables:
            self.tables[-1].append([])
        if tag in ("td", "th") and self.tables:
            self.tables[-1][-1].append("")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag == "text":
            self._title = False
        if self._figure and tag == "span":
            self.figures.append(tuple(self._figure))
            self._figure = None
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        if self._figure is not None:
            self._figure[1] += data
        elif self.inside(id="path"):
            self.path_text.append(data)
        if self._title:
            self.histograms[-1][1] += data
        if self.stack and self.stack[-1][0] == "h2":
            self.order.append(data.strip())
        if self.tables and self.stack and self.stack[-1][0] in ("td", "th"):
            self.tables[-1][-1][-1] += data


def pointer(doc, ptr):
    for part in ptr.strip("/").split("/"):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def shown_equals(text, value, field):
    """A figure as shown (`67.1ms`, `2994`) equals the JSON value to its last shown digit."""
    if not field.endswith("_ns"):
        return int(text) == value
    m = re.fullmatch(r"(-?\d+(?:\.(\d+))?)(ns|µs|ms|s)", text)
    assert m, f"not a duration: {text!r}"
    unit = UNITS[m.group(3)]
    decimals = len(m.group(2) or "")
    return abs(float(m.group(1)) * unit - value) <= 0.5 * 10 ** -decimals * unit + 1e-6


def png_pixels(path):
    """Width, height and RGB rows of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    return w, h, [[tuple(r[x * bpp:x * bpp + 3]) for x in range(w)] for r in rows]


def dominant_rows(path):
    """The rows of a screenshot with the dominant hop's red on them, and the height."""
    _, h, rows = png_pixels(path)
    near = lambda p: all(abs(p[i] - DOMINANT[i]) <= 6 for i in range(3))
    return [y for y, r in enumerate(rows) if sum(map(near, r)) >= 20], h


def check_figures(dom, rep):
    assert dom.figures, "the page shows no figure with its JSON pointer"
    for ptr, text in dom.figures:
        field = ptr.rsplit("/", 1)[1]
        value = pointer(rep, ptr)
        assert shown_equals(text.strip(), value, field), f"{ptr}: shown {text!r}, JSON {value}"
    # Every number the drawing shows is one of those figures (host names aside).
    hosts = [h["host"] for h in rep.get("hosts", [rep])]
    rest = "".join(dom.path_text)
    for h in hosts:
        rest = rest.replace(h, "")
    rest = re.sub(r"p(50|99) ", "", rest)  # the names of the figures
    assert not re.search(r"\d", rest), f"a number in the drawing without its JSON: {rest!r}"


def check_histograms(dom, rep):
    hosts = rep.get("hosts", [rep])
    counts = {}
    for h in hosts:
        for s in h["stages"]:
            counts.setdefault(f"{s['from']} → {s['to']}", []).append(s["count"])
    assert dom.histograms, "no histogram"
    seen = {}
    for label, title, bars in dom.histograms:
        i = seen.get(label, 0)
        seen[label] = i + 1
        total = sum(bars)
        assert total == counts[label][i], f"{label}: bars hold {total}, JSON count {counts[label][i]}"
        assert title.endswith(f"({total})"), title
    assert sum(seen.values()) == sum(len(v) for v in counts.values()), "a stage pair has no histogram"


def check_stage_table(dom, rep):
    """The per-stage table's cells equal the JSON's stage rows."""
    rows = rep.get("hosts", [rep])[0]["stages"]
    table = next(t for t in dom.tables if t and t[0][:3] == ["stages", "count", "mean"])
    fields = ["count", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"]
    body = table[1:]
    assert len(body) == len(rows)
    for cells, row in zip(body, rows):
        assert cells[0] == f"{row['from']} → {row['to']}"
        for text, field in zip(cells[1:], fields):
            assert shown_equals(text, row[field], field), f"{cells[0]} {field}: {text} vs {row[field]}"


@pytest.mark.parametrize("recs", [["bulk-loss.parquet"], ["two-hosts-a.parquet", "two-hosts-b.parquet"]],
                         ids=["one-host", "two-hosts"])
def test_the_browser_shows_the_path_first_and_the_json_figures(tmp_path, recs):
    page, rep = reports(tmp_path, [str(ROOT / "samples" / r) for r in recs])
    dom = Dom()
    dom.feed(browser("--dump-dom", page.as_uri()).stdout.decode())
    # The drawing is there, before everything else.
    assert dom.order.index("#path") < dom.order.index("Latency per stage") < dom.order.index("Tables")
    assert dom.lanes >= 2 and dom.stack_segments >= 4, (dom.lanes, dom.stack_segments)
    check_figures(dom, rep)
    check_histograms(dom, rep)
    check_stage_table(dom, rep)
    if len(recs) > 1:
        # The lanes across the wire show the between-hosts figures.
        assert any(p.startswith("/between_hosts/0/wire/") for p, _ in dom.figures)
    # Rendered: the dominant hop's red is on screen, in the first screenful.
    shot = tmp_path / "report.png"
    browser("--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    red, height = dominant_rows(shot)
    assert red and min(red) < height * 0.3, f"no dominant hop drawn near the top: rows {red[:5]}"
    if len(recs) == 1 and os.environ.get("TCPTAPE_DOCS_SCREENSHOT"):
        shutil.copy(shot, os.environ["TCPTAPE_DOCS_SCREENSHOT"])


def test_a_narrow_window_keeps_the_drawing_readable(tmp_path):
    page, _ = reports(tmp_path, [str(ROOT / "samples" / "bulk-loss.parquet")])
    shot = tmp_path / "narrow.png"
    browser("--window-size=420,1400", f"--screenshot={shot}", page.as_uri())
    w, _, rows = png_pixels(shot)
    assert w == 420
    red, height = dominant_rows(shot)
    assert red and min(red) < height * 0.5, "the drawing is not on the first screen of a phone"
    # Nothing is cut at the right edge: the last column of pixels is background.
    right = [r[-1] for r in rows]
    assert sum(p != (255, 255, 255) for p in right) < len(right) * 0.02
