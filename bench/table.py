"""Prints the table of bench/run.sh from the wrk outputs it left in a directory.

Each load run left `<row>.<target>.r<round>.txt` (wrk's own output) and the
in-process ES256 rate `inprocess.r<round>.txt` ("<verifications per second>").
The forged-token row's anchor, `es256`, is an actix endpoint that checks each
request's signature with ES256 and does nothing else (`bench_noop --es256`),
measured through the socket like every other side. A run
counts only if every answer was what the row expects (all 2xx, or all refused
for the broken-token rows) and no socket error happened; otherwise the table
says VOID for it.

Each rate column is the median of that side's rounds. Each ratio is the
median over the rounds of the ratio taken within a round (the two runs
seconds apart, see bench/run.sh), and the goal is judged on it; the ratio of
the two medians and every round's ratio are printed below the table, so a
reader sees how far the rounds spread.

  python3 bench/table.py DIR
"""

import re
import statistics
import sys
from pathlib import Path

# row id, label, unit, expected answers of ours, goal (which anchor, ratio)
ROWS = [
    ("verify_cached", "`/verify`, valid cached token", "req/s", "ok", ("noop", 0.8)),
    ("verify_badsig", "`/verify`, the same token with a broken signature", "req/s", "denied", ("noop", 0.5)),
    ("verify_forged", "`/verify`, a distinct forged token each time", "req/s", "denied", ("es256", 0.9)),
    ("register_redis", "`/register`, Redis", "req/s", "ok", ("python", 30.0)),
    ("register_embedded", "`/register`, embedded store", "req/s", "ok", ("python:register_redis", 10.0)),
    ("refresh_redis", "refresh grant with rotation, Redis", "tokens/s", "ok", ("python", 30.0)),
    ("refresh_embedded", "refresh grant with rotation, embedded", "tokens/s", "ok", ("python:refresh_redis", 10.0)),
]
# What each anchor must answer: the anchors answer 200 to anything; Python
# refuses a broken token like we do.
ANCHOR_EXPECT = {"noop": "ok", "nginx": "ok", "es256": "denied"}


def parse(path: Path) -> dict:
    text = path.read_text()
    num = lambda pat, default=None: (lambda m: float(m.group(1)) if m else default)(re.search(pat, text))
    requests = num(r"(\d+) requests in")
    rps = num(r"Requests/sec:\s+([\d.]+)")
    non2xx = num(r"Non-2xx or 3xx responses:\s+(\d+)", 0.0)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = sum(int(x) for x in m.groups()) if m else 0
    if rps is None or requests is None:
        return {"rps": None, "why": "no wrk result"}
    return {"rps": rps, "requests": requests, "non2xx": non2xx, "errors": errors}


def check(r: dict, expect: str) -> str | None:
    if r.get("rps") is None:
        return r.get("why", "no result")
    if r["errors"]:
        return f"{r['errors']} socket errors"
    if expect == "ok" and r["non2xx"]:
        return f"{int(r['non2xx'])} answers not 2xx"
    if expect == "denied" and r["non2xx"] != r["requests"]:
        return f"{int(r['requests'] - r['non2xx'])} answers 2xx, all should be refused"
    return None


def main() -> int:
    d = Path(sys.argv[1])
    medians: dict[tuple[str, str], float] = {}
    problems = []
    for f in sorted(d.glob("*.r*.txt")):
        parts = f.name.split(".")
        if parts[0] == "inprocess":
            continue
        row, target = parts[0], parts[1]
        expect = next(e for (rid, _, _, e, _) in ROWS if rid == row)
        if target == "python" and row.startswith("verify_badsig"):
            expect = "denied"
        elif target in ANCHOR_EXPECT:
            expect = ANCHOR_EXPECT[target]
        why = check(parse(f), expect)
        if why:
            problems.append(f"{f.name}: {why}")
    rates: dict[tuple[str, str], dict[int, float]] = {}
    for f in sorted(d.glob("*.r*.txt")):
        parts = f.name.split(".")
        rnd = int(parts[-2][1:]) if parts[-2][1:].isdigit() else None
        if rnd is None:
            continue
        if parts[0] == "inprocess":
            rates.setdefault(("verify_forged", "inprocess"), {})[rnd] = float(f.read_text().split()[0])
            continue
        r = parse(f)
        if r.get("rps") is not None:
            rates.setdefault((parts[0], parts[1]), {})[rnd] = r["rps"]
    # Each side's rate by round; its column shows the median.
    for k, v in rates.items():
        medians[k] = statistics.median(v.values())
    rounds = max((len(v) for v in rates.values()), default=0)

    def paired(a: tuple[str, str], b: tuple[str, str]) -> list[float]:
        """a ÷ b within each round where both ran."""
        ra, rb = rates.get(a, {}), rates.get(b, {})
        return [ra[i] / rb[i] for i in sorted(ra) if i in rb and rb[i]]

    def cell(row: str, target: str) -> str:
        v = medians.get((row, target))
        return f"{v:,.0f}" if v is not None else ""

    def ratio(pairs: list[float], digits: int) -> str:
        return f"{statistics.median(pairs):.{digits}f}" if pairs else ""

    spread = []
    print(f"| measure | no-op actix | nginx | Python gateway | ES256-only actix | ours | ours ÷ no-op | ours ÷ Python | ours ÷ ES256-only | goal | met |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    all_met = True
    for row, label, unit, _, (anchor, goal) in ROWS:
        ours = medians.get((row, "ours"))
        py_row = anchor.split(":")[1] if anchor.startswith("python:") else row
        by = {
            "noop": paired((row, "ours"), (row, "noop")),
            "python": paired((row, "ours"), (py_row, "python")),
            "es256": paired((row, "ours"), (row, "es256")),
        }
        kind = anchor.split(":")[0]
        base = {"noop": medians.get((row, "noop")), "python": medians.get((py_row, "python")),
                "es256": medians.get((row, "es256"))}[kind]
        judged = by[kind]
        met = bool(judged and statistics.median(judged) >= goal)
        all_met &= met
        goal_text = {"noop": f"÷ no-op ≥ {goal}", "python": f"÷ Python ≥ {goal:g}", "es256": f"÷ ES256-only ≥ {goal}"}[kind]
        py_cell = cell(row, "python") if py_row == row else ""
        print(
            f"| {label}, {unit} | {cell(row, 'noop')} | {cell(row, 'nginx')} | {py_cell} | {cell(row, 'es256')} "
            f"| {cell(row, 'ours')} | {ratio(by['noop'], 2)} | {ratio(by['python'], 1)} | {ratio(by['es256'], 2)} "
            f"| {goal_text} | {'yes' if met else 'NO'} |"
        )
        if judged and ours and base:
            digits = 1 if kind == "python" else 2
            spread.append(
                f"  {row}: ours ÷ {kind} by round {', '.join(f'{x:.{digits}f}' for x in judged)}; "
                f"ratio of the medians {ours / base:.{digits}f}"
            )
    print("\nratios within each round (the table shows their median):")
    print("\n".join(spread))
    noop = medians.get(("verify_cached", "noop"))
    raw, es = medians.get(("verify_forged", "inprocess")), medians.get(("verify_forged", "es256"))
    forged = medians.get(("verify_forged", "ours"))
    if noop and raw:
        # One request through the socket costs at least the no-op's time plus the signature's.
        best = 1 / (1 / noop + 1 / raw)
        print(
            f"\nES256 in process (one thread, one signature in a loop, no socket): {raw:,.0f} verifications/s. "
            f"Ceiling of any server on this HTTP stack: 1 / (1/no-op + 1/in-process) = {best:,.0f} req/s, "
            f"{best / raw:.2f}× in process; the ES256-only endpoint reaches {(es or 0) / raw:.2f}×, "
            f"ours {(forged or 0) / raw:.2f}×."
        )
    print(f"\n{rounds} round(s); every goal met: {'yes' if all_met and not problems else 'NO'}")
    if problems:
        print("VOID runs (not what the row expects):")
        for p in problems:
            print("  " + p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
