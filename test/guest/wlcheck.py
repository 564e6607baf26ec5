"""Reference model of test/guest/workload.c for the integration tests.

Stdlib only.  Mirrors the formulas documented at the top of workload.c and
in README.md:

    sum(0) = seed;  sum(k + 1) = splitmix64(sum(k) ^ k)
    word i of page p, generation g = splitmix64(splitmix64(seed) ^ (g << 32) ^ p)
                                     + i * GOLDEN

Run as a script on a captured console log to check every status line:

    python3 wlcheck.py LOGFILE
"""

import re
import sys

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
PAGE_WORDS = 512

# A line may end in extra " key=value" fields after the documented ones
# (the bare-metal guest in test/kvm-guest adds ticks=, cpus=, ap_*=); they
# come back as extra dict keys.  Values are decimal, or hex if the key ends
# in "sum".
EXTRA = r"((?: [a-z_]+=[0-9a-f]+)*)"
STATUS_RE = re.compile(
    r"WL status pass=(\d+) w=(\d+) sum=([0-9a-f]{16}) pages=(\d+) "
    r"corrupt=(\d+) t=(\d+)" + EXTRA + r"\s*$")
CORRUPT_RE = re.compile(
    r"WL CORRUPT page=(\d+) word=(\d+) got=([0-9a-f]{16}) "
    r"want=([0-9a-f]{16}) w=(\d+)" + EXTRA + r"\s*$")
START_RE = re.compile(
    r"WL start pages=(\d+) mb=(\d+) rate_kbs=(\d+) zero_every=(\d+) "
    r"untouched_mb=(\d+) seed=(\d+)" + EXTRA + r"\s*$")


def _extra(d, fields):
    """Add the trailing ' key=value' fields (EXTRA's group) to dict d."""
    for kv in fields.split():
        k, v = kv.split("=", 1)
        d.setdefault(k, int(v, 16 if k.endswith("sum") else 10))
    return d


def splitmix64(x):
    z = (x + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def advance_sum(s, w_from, w_to):
    """Checksum after w_to rewrites, given it is s after w_from rewrites."""
    if w_to < w_from:
        raise ValueError("cannot advance backwards: %d > %d" % (w_from, w_to))
    for k in range(w_from, w_to):
        # splitmix64 inlined: this loop runs millions of times.
        z = ((s ^ k) + GOLDEN) & MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        s = z ^ (z >> 31)
    return s


def expected_sum(seed, w):
    """Checksum the workload reports after w rewrites."""
    return advance_sum(seed & MASK, 0, w)


class SumTracker:
    """expected_sum() for increasing w without starting over each time."""

    def __init__(self, seed):
        self.seed = seed & MASK
        self.w = 0
        self.sum = self.seed

    def at(self, w):
        if w < self.w:
            self.w, self.sum = 0, self.seed
        self.sum = advance_sum(self.sum, self.w, w)
        self.w = w
        return self.sum


def generation(p, w, npages):
    """Generation page p holds after w rewrites."""
    return w // npages + (1 if p < w % npages else 0)


def page_words(seed, p, gen, zero_every=16):
    """The 512 words page p must hold at generation gen (not discarded)."""
    if zero_every and p % zero_every == zero_every - 1:
        return [0] * PAGE_WORDS
    base = splitmix64(splitmix64(seed & MASK) ^ (gen << 32) ^ p)
    return [(base + i * GOLDEN) & MASK for i in range(PAGE_WORDS)]


def parse_status(line):
    """Fields of a 'WL status' line as ints, or None if it is not one.

    The line may carry a trailing '\\r' (serial console) or other console
    noise before 'WL'."""
    m = STATUS_RE.search(line)
    if not m:
        return None
    return _extra({
        "pass": int(m.group(1)),
        "w": int(m.group(2)),
        "sum": int(m.group(3), 16),
        "pages": int(m.group(4)),
        "corrupt": int(m.group(5)),
        "t": int(m.group(6)),
    }, m.group(7))


def parse_start(line):
    m = START_RE.search(line)
    if not m:
        return None
    keys = ("pages", "mb", "rate_kbs", "zero_every", "untouched_mb", "seed")
    return _extra(dict(zip(keys, (int(g) for g in m.groups()[:6]))),
                  m.group(7))


def parse_corrupt(line):
    m = CORRUPT_RE.search(line)
    if not m:
        return None
    return _extra({
        "page": int(m.group(1)),
        "word": int(m.group(2)),
        "got": int(m.group(3), 16),
        "want": int(m.group(4), 16),
        "w": int(m.group(5)),
    }, m.group(6))


def check_log(lines):
    """Check a console log; returns a list of problems (empty: all good)."""
    problems = []
    tracker = None
    last = None
    for n, line in enumerate(lines, 1):
        start = parse_start(line)
        if start:
            tracker = SumTracker(start["seed"])
            last = None
            continue
        if parse_corrupt(line) or "WL CORRUPT" in line:
            problems.append("line %d: %s" % (n, line.strip()))
            continue
        st = parse_status(line)
        if not st:
            continue
        if tracker is None:
            problems.append("line %d: status before WL start" % n)
            continue
        if st["sum"] != tracker.at(st["w"]):
            problems.append("line %d: sum %016x != expected %016x for w=%d"
                            % (n, st["sum"], tracker.sum, st["w"]))
        if st["corrupt"]:
            problems.append("line %d: corrupt=%d" % (n, st["corrupt"]))
        if last and (st["w"] < last["w"] or st["pass"] < last["pass"]):
            problems.append("line %d: went backwards" % n)
        last = st
    return problems


def main(argv):
    if len(argv) != 2:
        print("usage: wlcheck.py LOGFILE", file=sys.stderr)
        return 2
    with open(argv[1], errors="replace") as f:
        lines = f.readlines()
    statuses = [s for s in map(parse_status, lines) if s]
    problems = check_log(lines)
    for p in problems[:20]:
        print(p)
    last = statuses[-1] if statuses else None
    print("%d status lines, last %s, %d problems"
          % (len(statuses), last, len(problems)))
    return 1 if problems or not statuses else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
