"""Measures of ``bench/capacity.py``: CPU and memory of every process the platform runs on,
a step's figures from what its users saw, whether the step held, and the report (markdown
table, plot).

CPU and memory come from /proc (``bench.servers``): each worker, this run's PostgreSQL
backends (summed; their RSS counts shared buffers each time, so it overstates), the Redis
server (shared with anything else using it), the Ollama emulator and the load generator
itself. A load generator near a whole core measures itself more than the platform: the table
shows its CPU so that can be seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from bench.capacity_model import TARGET_P99_MS
from bench.capacity_user import Stats
from bench.servers import cpu_seconds, postgres_backends, rss_kib

SAMPLE_S = 2.0
GENERATOR_BUSY = 0.8  # share of one core above which the load generator measures itself


def redis_server_pid() -> int | None:
    """The local ``redis-server`` process, if one runs on this machine."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            if title.split(b"/")[-1].startswith(b"redis-server"):
                return int(entry.name)
    return None


class Sampler:
    """CPU share (of one core) over a window and peak RSS in it, per process label."""

    def __init__(self, processes: dict[str, int], database: str) -> None:
        self.processes = processes  # label -> pid; "postgres" is found by ``database``
        self.database = database
        self.peak: dict[str, int] = {}
        self.task: asyncio.Task | None = None
        self.start: tuple[float, dict[str, dict[int, float]]] | None = None

    def _cpu(self) -> dict[str, dict[int, float]]:
        by_label = {label: {pid: cpu_seconds(pid)} for label, pid in self.processes.items()}
        by_label["postgres"] = {pid: cpu_seconds(pid) for pid in postgres_backends(self.database)}
        by_label["load generator"] = {os.getpid(): time.process_time()}
        return by_label

    def _rss(self) -> None:
        pids = {label: [pid] for label, pid in self.processes.items()}
        pids["postgres"] = postgres_backends(self.database)
        pids["load generator"] = [os.getpid()]
        for label, group in pids.items():
            total = 0
            for pid in group:
                with contextlib.suppress(OSError, RuntimeError):  # a backend that just ended
                    total += rss_kib(pid)
            self.peak[label] = max(self.peak.get(label, 0), total)

    async def _loop(self) -> None:
        while True:
            self._rss()
            await asyncio.sleep(SAMPLE_S)

    def begin(self) -> None:
        self.peak = {}
        self.start = (time.monotonic(), self._cpu())
        self.task = asyncio.get_running_loop().create_task(self._loop())

    def end(self) -> dict[str, dict[str, float]]:
        """{label: {"cpu": share of one core, "rss_mib": peak}} over the window."""
        self.task.cancel()
        self._rss()
        began, before = self.start
        wall = max(time.monotonic() - began, 1e-6)
        after = self._cpu()
        usage = {}
        for label, pids in after.items():
            spent = sum(now - before.get(label, {}).get(pid, 0.0) for pid, now in pids.items())
            usage[label] = {"cpu": spent / wall, "rss_mib": self.peak.get(label, 0) / 1024}
        return usage


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def summarise(stats: Stats, hold: float, lost: int, unseen: int, usage: dict, profile: str):
    """One step's figures (milliseconds, per second) as stored in the JSON results."""
    return {
        "users": stats.users,
        "deliveries": len(stats.latencies),
        "p50_ms": pct(stats.latencies, 0.50),
        "p99_ms": pct(stats.latencies, 0.99),
        "replies": {
            name: {"count": len(values), "p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99)}
            for name, values in sorted(stats.replies.items())
        },
        "errors": dict(stats.errors),
        "error_texts": stats.error_texts,
        "lost": lost,
        "acked_never_delivered": unseen,
        "frames_per_s": sum(stats.frames.values()) / hold,
        "frames_by_event_per_s": {k: v / hold for k, v in stats.frames.most_common()},
        "sent_per_s": {k: v / hold for k, v in stats.sent.most_common()},
        "usage": usage,
        "profile": profile,
    }


def failures(step: dict) -> list[str]:
    """Why a step did not hold (empty: it held)."""
    why = []
    if step["p99_ms"] > TARGET_P99_MS:
        why.append(f"p99 send-to-receive {step['p99_ms']:.0f} ms")
    for name, reply in step["replies"].items():
        if reply["p99_ms"] > TARGET_P99_MS:
            why.append(f"p99 {name} {reply['p99_ms']:.0f} ms")
    if step["errors"]:
        why.append(f"{sum(step['errors'].values())} errors")
    if step["lost"] or step["acked_never_delivered"]:
        why.append(f"{step['lost'] + step['acked_never_delivered']} lost")
    if not step["deliveries"]:
        why.append("nothing delivered")
    return why


def caveats(step: dict) -> list[str]:
    """What makes a step's figures doubtful without failing it: a load generator that used
    most of a core queued frames itself, so its latencies include its own delay."""
    cpu = step["usage"].get("load generator", {}).get("cpu", 0.0)
    return [f"load generator at {cpu:.0%} of a core"] if cpu > GENERATOR_BUSY else []


def progress(workers: int, step: dict) -> None:
    why = failures(step)
    worst = max(step["replies"].items(), key=lambda kv: kv[1]["p99_ms"], default=("-", {}))
    print(
        f"  {workers} worker(s) {step['users']:>6} users: p50 {step['p50_ms']:.1f} ms, "
        f"p99 {step['p99_ms']:.1f} ms, worst reply {worst[0]} "
        f"{worst[1].get('p99_ms', 0):.0f} ms, {step['frames_per_s']:.0f} frames/s, "
        f"{sum(step['errors'].values())} errors, {step['lost']} lost of "
        f"{step['copies_checked']} copies checked: "
        f"{'held' if not why else 'failed (' + '; '.join(why) + ')'}"
        + "".join(f" [{note}]" for note in caveats(step)),
        flush=True,
    )


def table(runs: list[dict]) -> str:
    """The markdown table of every step of every run."""
    labels = sorted({label for run in runs for s in run["steps"] for label in s["usage"]},
                    key=_usage_order)  # fmt: skip
    head = ["workers", "users", "p50 ms", "p99 ms", "worst reply p99", "errors", "lost",
            "frames/s", *(f"{label} CPU / MiB" for label in labels), "held"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for run in runs:
        for step in run["steps"]:
            worst = max(step["replies"].items(), key=lambda kv: kv[1]["p99_ms"], default=None)
            reply = f"{worst[0]} {worst[1]['p99_ms']:.0f}" if worst else "-"
            why = failures(step)
            verdict = "; ".join(["yes" if not why else "no: " + "; ".join(why), *caveats(step)])
            cells = [
                str(run["workers"]), str(step["users"]), f"{step['p50_ms']:.1f}",
                f"{step['p99_ms']:.1f}", reply, str(sum(step["errors"].values())),
                str(step["lost"] + step["acked_never_delivered"]), f"{step['frames_per_s']:.0f}",
                *(_usage(step["usage"].get(label)) for label in labels),
                verdict,
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _usage_order(label: str) -> tuple[int, str]:
    order = ("worker", "postgres", "redis", "emulator", "load generator")
    return next((i for i, p in enumerate(order) if label.startswith(p)), len(order)), label


def _usage(usage: dict | None) -> str:
    return f"{usage['cpu']:.0%} / {usage['rss_mib']:.0f}" if usage else "-"


def plot(runs: list[dict], path: Path) -> bool:
    """Users against p99 (send-to-receive and the worst reply), and against CPU per process,
    one line per run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    labels = sorted({label for run in runs for s in run["steps"] for label in s["usage"]},
                    key=_usage_order)  # fmt: skip
    for k, run in enumerate(runs):
        steps = run["steps"]
        users = [s["users"] for s in steps]
        name = f"{run['workers']} worker{'s' if run['workers'] > 1 else ''}"
        worst = [max((r["p99_ms"] for r in s["replies"].values()), default=0) for s in steps]
        left.plot(users, [s["p99_ms"] for s in steps], marker="o", color=f"C{k}",
                  label=f"{name}: send-to-receive p99")  # fmt: skip
        left.plot(users, worst, marker="x", linestyle="--", color=f"C{k}",
                  label=f"{name}: worst reply p99")  # fmt: skip
        for j, label in enumerate(labels):  # one colour per process, one line style per run
            if not any(label in s["usage"] for s in steps):
                continue
            cpu = [s["usage"].get(label, {}).get("cpu", 0) * 100 for s in steps]
            right.plot(users, cpu, marker="o", color=f"C{j}", linestyle=("-", "--", ":")[k % 3],
                       label=f"{name}: {label}")  # fmt: skip
    left.axhline(TARGET_P99_MS, color="red", linestyle=":", label="200 ms")
    left.set_xlabel("concurrent users")
    left.set_ylabel("p99 ms")
    left.set_yscale("log")
    right.set_xlabel("concurrent users")
    right.set_ylabel("CPU, % of one core")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
