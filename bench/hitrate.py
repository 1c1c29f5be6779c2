"""``python -m bench hitrate``: the L1 eviction policy on real traces (P6).

Replays every trace of ``../shared/traces`` through freshcache's policies,
plain LRU, the Python peers and Belady's MIN, at several sizes per trace,
and prints hit ratios side by side; then times one ``get`` on a hit for each
store, as a ratio to ``dict.get`` in the same run.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import _policies, _traces
from bench._timing import best_per_call, sync_loop

FRACTIONS = (0.005, 0.01, 0.05, 0.1)  # of the trace's unique keys
ANCHORS = {"arc-oltp": {1000: 32.83, 2000: 42.47}}  # published LRU figures
DEFAULT = "freshcache S3-FIFO (default)"
DASHES = ("-", (0, (5, 2)), (0, (1, 1)), (0, (3, 1, 1, 1)))


def sizes_for(name: str, unique: int, fractions: tuple[float, ...]) -> list[int]:
    sizes = {max(1, round(unique * f)) for f in fractions}
    sizes.update(ANCHORS.get(name, {}))
    return sorted(sizes)


def simulate(
    directory: Path, names: list[str], limit: int | None, fractions: tuple[float, ...]
) -> dict[str, Any]:
    policies = _policies.all_policies()
    results: dict[str, Any] = {}
    for name in names:
        keys = _traces.load(directory, name)
        total = len(keys)
        if limit is not None and total > limit:
            keys = keys[:limit]
        unique = len(set(keys))
        rows = []
        for size in sizes_for(name, unique, fractions):
            row: dict[str, Any] = {"size": size, "ratios": {}}
            for label, run in policies.items():
                t0 = time.perf_counter()
                row["ratios"][label] = 100.0 * run(keys, size) / len(keys)
                row.setdefault("seconds", {})[label] = time.perf_counter() - t0
            rows.append(row)
            print(
                f"{name} @ {size:,}: "
                + ", ".join(f"{k} {v:.2f}" for k, v in row["ratios"].items()),
                file=sys.stderr,
                flush=True,
            )
        results[name] = {
            "requests": len(keys),
            "requests_in_file": total,
            "unique": unique,
            "rows": rows,
        }
    return results


def hit_path(quick: bool) -> dict[str, float]:
    """ns per ``get`` on a hit, for each store (1,000 entries, one hot key)."""
    import cachebox
    import cachetools
    from theine import Cache as Theine

    from freshcache._inproc.store import MemoryStore

    keys = [f"user:{i}" for i in range(1000)]
    hot = keys[500]
    plain = dict.fromkeys(keys, 1)
    stores: dict[str, Any] = {
        "freshcache S3-FIFO (default), TTL set": MemoryStore(max_entries=2000),
        "freshcache SIEVE, TTL set": MemoryStore(max_entries=2000, policy="sieve"),
    }
    for store in stores.values():
        for key in keys:
            store.set(key, 1, ttl=3600)
    peers: dict[str, Any] = {
        "cachetools LRUCache (no TTL)": cachetools.LRUCache(2000),
        "cachetools TTLCache": cachetools.TTLCache(2000, ttl=3600),
        "cachetools LFUCache": cachetools.LFUCache(2000),
        "cachebox LRUCache (no TTL)": cachebox.LRUCache(2000),
    }
    for peer in peers.values():
        for key in keys:
            peer[key] = 1
    theine: Any = Theine(2000)
    for key in keys:
        theine.set(key, 1)
    loops = {"dict.get (baseline)": sync_loop(plain.get, hot)}
    loops.update({n: sync_loop(s.get, hot) for n, s in {**stores, **peers}.items()})
    loops["theine Cache.get"] = sync_loop(theine.get, hot)
    best = best_per_call(
        loops, repeats=5 if quick else 15, min_seconds=0.005 if quick else 0.02
    )
    theine.close()
    return {name: seconds * 1e9 for name, seconds in best.items()}


def markdown_tables(results: dict[str, Any]) -> str:
    out = []
    for name, data in results.items():
        labels = list(data["rows"][0]["ratios"])
        note = ""
        if data["requests"] < data["requests_in_file"]:
            note = f", first {data['requests']:,} of {data['requests_in_file']:,}"
        out.append(
            f"#### {name} ({data['requests']:,} requests{note}, "
            f"{data['unique']:,} unique keys)\n"
        )
        out.append("| size | " + " | ".join(labels) + " |")
        out.append("| ---: |" + " ---: |" * len(labels))
        for row in data["rows"]:
            ratios = row["ratios"]
            best_online = max(v for k, v in ratios.items() if k != "Belady MIN")
            cells = []
            for label in labels:
                value = ratios[label]
                cell = f"{value:.2f}"
                if label != "Belady MIN" and value == best_online:
                    cell = f"**{cell}**"
                if label == DEFAULT and value < ratios["LRU"]:
                    cell += " (< LRU)"
                cells.append(cell)
            pct = 100.0 * row["size"] / data["unique"]
            out.append(f"| {row['size']:,} ({pct:.1f} %) | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def checks(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, anchors in ANCHORS.items():
        if (
            name not in results
            or results[name]["requests"] < results[name]["requests_in_file"]
        ):
            continue
        for row in results[name]["rows"]:
            if row["size"] in anchors:
                got = row["ratios"]["LRU"]
                want = anchors[row["size"]]
                verdict = "ok" if abs(got - want) < 0.005 else "WRONG"
                lines.append(
                    f"harness: LRU on {name} at {row['size']:,} = {got:.2f} % "
                    f"(published {want:.2f} %): {verdict}"
                )
                if row["size"] == 1000:
                    ours = row["ratios"][DEFAULT]
                    verdict = "meets" if ours >= 40 else "MISSES"
                    lines.append(
                        f"P6: default on {name} at 1,000 = {ours:.2f} % "
                        f"(target >= 40 %): {verdict}"
                    )
    below = [
        f"{name} @ {row['size']:,} "
        f"({row['ratios'][DEFAULT]:.3f} < {row['ratios']['LRU']:.3f})"
        for name, data in results.items()
        for row in data["rows"]
        if row["ratios"][DEFAULT] < row["ratios"]["LRU"]
    ]
    lines.append("P6: default below LRU: " + ("; ".join(below) if below else "nowhere"))
    beaten = [
        f"{name} @ {row['size']:,}: {label} {value:.2f} > {row['ratios'][DEFAULT]:.2f}"
        for name, data in results.items()
        for row in data["rows"]
        for label, value in row["ratios"].items()
        if label not in (DEFAULT, "Belady MIN") and value > row["ratios"][DEFAULT]
    ]
    lines.append(f"peers above the default: {len(beaten)} cells")
    lines += ["  " + b for b in beaten]
    return lines


def hit_path_table(ns: dict[str, float]) -> str:
    base = ns["dict.get (baseline)"]
    out = [
        "| `get` on a hit | per call | ratio to `dict.get` |",
        "| --- | ---: | ---: |",
    ]
    for name, value in ns.items():
        out.append(f"| {name} | {value:.0f} ns | {value / base:.2f}x |")
    ours = ns["freshcache S3-FIFO (default), TTL set"]
    lru = ns["cachetools LRUCache (no TTL)"]
    ttl = ns["cachetools TTLCache"]
    out.append("")
    out.append(
        f"Default vs cachetools LRUCache.get: {ours / lru:.2f}x (target <= 1.00x: "
        f"{'meets' if ours <= lru else 'MISSES'}); vs TTLCache.get: {ours / ttl:.2f}x "
        f"(target <= 0.50x: {'meets' if ours <= 0.5 * ttl else 'MISSES'})."
    )
    return "\n".join(out)


def plot(results: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in results.items():
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
        sizes = [row["size"] for row in data["rows"]]
        for i, label in enumerate(data["rows"][0]["ratios"]):
            values = [row["ratios"][label] for row in data["rows"]]
            # Some peers coincide (every LRU gives the same figures): vary
            # the dashes so that overlapping lines stay visible.
            style: dict[str, Any] = {"linewidth": 1.2, "linestyle": DASHES[i % 4]}
            if label == DEFAULT:
                style = {"linewidth": 2.8}
            elif label == "Belady MIN":
                style = {"linestyle": "--", "color": "black", "linewidth": 1}
            ax.plot(sizes, values, marker="o", markersize=3, label=label, **style)
        ax.set_xscale("log")
        ax.set_xlabel("cache size (entries)")
        ax.set_ylabel("hit ratio (%)")
        ax.set_title(f"{name}: hit ratio by cache size")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = directory / f"hitrate-{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def run(
    *,
    traces_dir: str | None,
    only: list[str] | None,
    quick: bool,
    full: bool,
    limit: int,
    plot_dir: str | None,
    json_path: str | None,
    skip_timing: bool,
) -> int:
    started = time.perf_counter()
    directory = Path(traces_dir) if traces_dir else _traces.DEFAULT_DIR
    names = _traces.trace_names(directory)
    if only:
        names = [n for n in names if any(o in n for o in only)]
    fractions = (0.01, 0.1) if quick else FRACTIONS
    cap = None if full else (100_000 if quick else limit)
    results = simulate(directory, names, cap, fractions)
    ns = {} if skip_timing else hit_path(quick)
    elapsed = time.perf_counter() - started
    print(
        f"Run of {time.strftime('%Y-%m-%d %H:%M:%S %z')}: Python "
        f"{platform.python_version()}, {elapsed:.0f} s; requests per trace capped at "
        f"{cap:,}.\n"
        if cap
        else f"Run of {time.strftime('%Y-%m-%d %H:%M:%S %z')}: Python "
        f"{platform.python_version()}, {elapsed:.0f} s; whole traces.\n"
    )
    print("Hit ratio (%), best online policy in bold:\n")
    print(markdown_tables(results))
    print("\n".join(checks(results)))
    if ns:
        print()
        print(hit_path_table(ns))
    if plot_dir:
        for path in plot(results, Path(plot_dir)):
            print(f"wrote {path}", file=sys.stderr)
    if json_path:
        Path(json_path).write_text(json.dumps({"traces": results, "hit_path_ns": ns}))
    return 0
