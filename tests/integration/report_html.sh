#!/usr/bin/env bash
# `mailferry report --format html` (issue 10): one self-contained page (no
# network: no external script, style, image or font) that a manager reads:
# totals, a per-mailbox table with state, counts and MB, failures with their
# reasons, and throughput over time as an inline SVG chart from the batches
# recorded in the state. Rendered in a real headless Chromium: a screenshot
# taken here is checked for its size and for the chart's bars (decoded with
# the Python standard library), and the rendered DOM for the text a reader
# sees. Skips without chromium (apt-get install chromium).
source "$MF_SRC/tests/lib/common.sh"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip "chromium is not installed (apt-get install chromium)"
PST=$(pst_dir)
J=$T/job
pst_job "$J" "wave <1> & co" "$PST" "parallel = 2" "batch = 2"
{
  pst_manifest_header
  echo "Exchange,,aspnet_Outlook_1.pst,ann@example.com,FALSE,/,,,,"
  echo "Exchange,,docfetcher_test.pst,bob@example.com,FALSE,/,,,,"
  echo "Exchange,,rubymsg_attachAndInline.pst,cid@example.com,FALSE,/,,,,"
  echo "Exchange,,no-such-file.pst,dan@example.com,FALSE,/,,,,"
} >"$J/manifest.csv"
# slow stores, so that the batches spread over a few seconds
MF_FAULT_DELAY_MS=150 "$MF_BIN" run "$J/job.ini" --no-progress >"$T/run.out" 2>&1 && rc=0 || rc=$?
check_eq "the run exits 1 (one PST is missing)" "$rc" 1

"$MF_BIN" report "$J/job.ini" --format html >"$T/report.html" && rc=0 || rc=$?
check_eq "report --format html exits 0" "$rc" 0
"$MF_BIN" report "$J/job.ini" --format html >"$T/again.html"
check "the same state gives the same bytes" cmp -s "$T/report.html" "$T/again.html"
check "it is one self-contained file: no external resource" python3 -c '
import re, sys
h = open(sys.argv[1]).read()
bad = re.findall(r"(?i)<(?:script|link|img|iframe|object)\b|\b(?:src|href)\s*=|url\(|@import", h)
urls = [u for u in re.findall(r"https?://[^\"\x27 >]+", h) if u != "http://www.w3.org/2000/svg"]
assert not bad and not urls, (bad, urls)
assert "<style>" in h and "<svg" in h
' "$T/report.html"
check "the job name is escaped" grep -q "wave &lt;1&gt; &amp; co" "$T/report.html"

# --- the browser
bro() {
  local prof
  prof=$(mktemp -d "$T/chromium.XXXXXX")
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$prof" \
    --window-size=1200,900 "$@" "file://$T/report.html" 2>>"$T/chromium.log"
}
bro --screenshot="$T/report.png" >/dev/null && rc=0 || rc=$?
check_eq "chromium took a screenshot" "$rc" 0
bro --dump-dom >"$T/dom.html" && rc=0 || rc=$?
check_eq "chromium dumped the rendered DOM" "$rc" 0
[ -s "$T/report.png" ] || { bad "no screenshot"; tail -5 "$T/chromium.log"; finish; }
echo "  screenshot: $T/report.png"

# The screenshot: 1200x900, not blank, and the chart's bars (fill #2b6cb0)
# drawn as several separate columns of pixels.
check "the screenshot shows the page and the chart's bars" python3 - "$T/report.png" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, depth, ctype = ihdr[:4]
assert (w, h) == (1200, 900), (w, h)
assert depth == 8 and ctype in (2, 6), ihdr
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
rows, prev, i = [], bytearray(stride), 0
for _ in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
def px(x, y):
    r = rows[y]; return tuple(r[x * bpp:x * bpp + 3])
colours = set()
bar_cols = set()
for y in range(0, h, 2):
    for x in range(0, w, 2):
        p = px(x, y)
        colours.add(p)
        if abs(p[0] - 0x2b) < 12 and abs(p[1] - 0x6c) < 12 and abs(p[2] - 0xb0) < 12:
            bar_cols.add(x)
# separate bars: runs of columns with gaps between them
runs = sum(1 for x in sorted(bar_cols) if x - 2 not in bar_cols)
print("  distinct colours (sampled): %d, bar columns: %d, bars: %d" % (len(colours), len(bar_cols), runs))
assert len(colours) > 20, "the page looks blank"
assert len(bar_cols) >= 20 and runs >= 2, "the chart has no bars"
EOF

# The rendered text: totals, every mailbox with its state, the failure.
check "the rendered page has the totals, every mailbox, the failure and the chart" python3 - "$T/dom.html" <<EOF
import html, json, re, subprocess, sys
dom = open(sys.argv[1]).read()
text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
text = re.sub(r"\s+", " ", text)
rep = json.loads(subprocess.check_output(["$MF_BIN", "report", "$J/job.ini", "--format", "json"]))
t = rep["totals"]
assert "Migration report: wave <1> & co" in text, text[:200]
assert "%d messages stored" % t["messages_stored"] in text, text
assert "%.1f MB stored" % (t["bytes_stored"] / 1e6) in text, text
assert "%d / 4 mailboxes done" % t["mailboxes_done"] in text, text
for m in rep["mailboxes"]:
    row = re.search(re.escape(m["mailbox"]) + r" \S+ (\S+) (\d+) (\d+) ([\d.]+)", text)
    assert row, m["mailbox"]
    assert row.group(1) == m["state"], (row.groups(), m["state"])
    assert int(row.group(3)) == m["messages_stored"], (row.groups(), m)
dan = [m for m in rep["mailboxes"] if m["mailbox"] == "dan@example.com"][0]
assert dan["state"] == "failed" and dan["error"], dan
assert dan["error"][:40] in text, "the failure's reason is not shown"
assert "Throughput over time" in text
bars = re.findall(r'<rect class="bar"', dom)
assert len(bars) >= 2, len(bars)
print("  %d bars in the chart" % len(bars))
EOF
finish
