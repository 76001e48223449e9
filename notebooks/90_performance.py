# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Performance
#
# How fast bnnlib's optimizers and training steps are, how much memory a training step takes,
# and how long the book takes to build. This page only **reads** the files that the benchmark
# scripts in `benchmarks/` wrote (`benchmarks/results/*.json`); it runs nothing, so every
# profile shows the same committed numbers. To measure again on a quiet machine:
#
# ```bash
# make bench            # or: .venv/bin/python benchmarks/run_all.py
# ```
#
# `benchmarks/README.md` lists what each script measures and its options. Every benchmark takes
# the median of several runs after warm-up, and runs its cases in interleaved rounds so that
# the load from other processes affects all cases alike. By default torch uses one thread: on a
# shared two-core machine, two OpenMP threads spend their time waiting for each other.

# %% tags=["hide-input"]
# Setup: in a fresh runtime (Colab) install bnnlib from the book's repository, fetch the
# book's files (params, run records) and report the device. Written from _config.yml by
# `bnnlib-book setup-cells` (template: bnnlib_book/setup_cell.py); do not edit it here.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("bnnlib_book") is None:
    package = "bnnlib[book] @ git+https://github.com/bnnlib/bnnlib@main"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", package])
    importlib.invalidate_caches()

from bnnlib_book.runtime import setup

runtime = setup(
    repository="https://github.com/bnnlib/bnnlib",
    branch="main",
)

# %% tags=["hide-input"]
import json
import re
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from bnnlib_book.build import toc_documents

# %% tags=["parameters"]
profile = "cpu"
interactive = False
bench_dir = "benchmarks/results"
amortise_steps = 1000

# %% tags=["remove-input"]
# The goals (benchmarks/run_all.py checks the same ones in summary.json).
BOP_GOAL = 1.2
BAYESBINN_GOAL = 1.3
EXPLAIN_ABOVE = 1.15

folder = Path(bench_dir)
if not folder.is_dir():
    raise FileNotFoundError(
        f"{folder.resolve()} does not exist: this page reads the benchmark results committed "
        "to the book's repository (the setup cell uses a checkout or clones one; "
        "benchmarks/run_all.py writes them anew)"
    )


def load(name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


summary = load("summary") or {"benchmarks": {}}
results = {name: load(name) for name in ("optim", "train", "memory", "bayesbinn", "book")}


def is_quick(name: str) -> bool:
    data = results[name]
    entry = summary["benchmarks"].get(name, {})
    return bool((data or {}).get("quick", entry.get("quick", False)))


def warning(html: str) -> None:
    """A warning box, as HTML: the book renders Markdown outputs without MyST directives."""
    display(
        HTML(
            '<div class="admonition warning"><p class="admonition-title">Warning</p>'
            f"<p>{html}</p></div>"
        )
    )


def quick_warning(name: str) -> None:
    if results[name] is not None and is_quick(name):
        warning(
            "These numbers come from a <strong>quick run</strong> (<code>--quick</code>), which "
            "only checks that the script works: a few rounds at a reduced size, on a machine "
            "under load. They are not measurements."
        )


def missing(name: str) -> bool:
    if results[name] is None:
        display(
            Markdown(
                f"No `{name}.json` in `{bench_dir}`: run `benchmarks/run_all.py --only {name}`."
            )
        )
        return True
    return False


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# %% [markdown]
# ## Where and when the numbers were measured

# %% tags=["remove-input"]
rows = []
machines = set()
for name, data in results.items():
    if data is None:
        rows.append({"benchmark": name, "quick run": "file missing"})
        continue
    m = data["machine"]
    machines.add(
        f"{m['cpu']}, {m['logical_cores']} logical cores, torch {m['torch']}, Python {m['python']}"
    )
    entry = summary["benchmarks"].get(name, {})
    load_avg = entry.get("load_average_before") or m.get("load_average_at_start")
    rows.append(
        {
            "benchmark": name,
            "quick run": "yes" if is_quick(name) else "no",
            "date (UTC)": data.get("date") or entry.get("date") or "not recorded",
            "torch threads": m["torch_threads"],
            "1-min load at start": "-" if load_avg is None else f"{load_avg[0]:.1f}",
        }
    )
if any(is_quick(name) for name in results if results[name] is not None):
    warning(
        "Some results below come from <strong>quick runs</strong>, which only check that the "
        "scripts work. Those numbers are not measurements; the sections that use them say so."
    )
lines = [f"- Machine: {text}" for text in sorted(machines)]
commit = summary.get("git_commit")
if commit:
    lines.append(f"- Last `run_all.py`: commit `{commit[:12]}`, {summary.get('date', '')}.")
display(Markdown("\n".join(lines)))
display(pd.DataFrame(rows).fillna("").set_index("benchmark"))

# %% [markdown]
# A 1-minute load average above the number of cores means that other processes were competing
# for the CPU. Medians are robust to occasional interruptions, but not to constant contention.
#
# ## Optimizer step against the memory floor
#
# An optimizer step over BinaryNet's binary tensors (its nine full-width kernels) does almost no
# arithmetic per weight. Its time is therefore set by memory traffic.
# The **floor** is the time of the fastest possible update that touches the same data: in the
# same process, a `torch.compile`'d kernel over the same nine tensors that reads and writes
# exactly the bytes the update must touch, with one addition per stream. Bop must read the
# gradient $g$, its moving average $m$ and the weight $w$, and write $m$ and $w$: five float32
# streams, 20 bytes per weight. Bop2ndOrder adds the second moment $v$ (seven streams).
# BayesBiNN (one Monte-Carlo sample, no momentum) reads $g$, $\lambda$ and $\mu$ and writes
# $\lambda$, $\mu$, its momentum buffer and the relaxed weights: also seven streams.
#
# No implementation can beat its floor by more than timing noise, so *time / floor* measures
# how much of the step is overhead: Python, extra passes over memory, or kernel launches.
# The goal for Bop is 1.2 or less. `reference` is the literal one-tensor-at-a-time rule,
# `foreach` uses `torch._foreach_*` over all tensors, and `compiled` is one fused
# `torch.compile`'d pass per tensor (the default for groups of at least $2^{20}$ weights when a
# compiler is available). The compile time is paid once per process; the last columns spread
# it over `amortise_steps` steps.

# %% tags=["remove-input"]
if not missing("optim"):
    quick_warning("optim")
    optim = results["optim"]
    settings = optim["settings"]
    by_name = {r["name"]: r for r in optim["results"]}

    def streams(floor_name: str) -> int | None:
        """Streams a floor moves, from its name "floor X (r a,b,c; w d,e)"."""
        found = re.search(r"\(r ([^;]+); w ([^)]+)\)", floor_name)
        return None if found is None else sum(len(p.split(",")) for p in found.groups())

    table = []
    for r in optim["results"]:
        floor = by_name.get(r["floor"]) if r["floor"] else None
        compile_s = max(r["compile_s"], 0.0) if r["compile_s"] is not None else None
        amortise = floor is not None and bool(compile_s)
        amortised = r["median_ms"] + (compile_s or 0.0) * 1e3 / amortise_steps
        row = {
            "case": r["name"],
            "median ms": ms(r["median_ms"]),
            "min ms": ms(r["min_ms"]),
            "/ floor": ratio(r["ratio_to_floor"]),
            "min / min floor": ratio(r["min_ratio_to_floor"]),
            "compile s": "-" if compile_s is None else f"{compile_s:.1f}",
            f"ms + compile / {amortise_steps:,}": ms(amortised) if amortise else "-",
            "that / floor": ratio(amortised / floor["median_ms"]) if amortise else "-",
        }
        n = streams(r["name"]) if r["name"].startswith("floor") else None
        if n:
            row["floor GB/s"] = f"{n * 4 * settings['numel'] / (r['median_ms'] * 1e-3) / 1e9:.1f}"
        table.append(row)
    display(
        Markdown(
            f"{settings['numel']:,} weights in {len(settings['tensors'])} tensors on "
            f"{settings['device']}, median of {settings['rounds']} steps after "
            f"{settings['warmup']} warm-up, inductor cache: {settings['inductor_cache']}."
        )
    )
    display(pd.DataFrame(table).fillna("").set_index("case"))

    bop = by_name.get("Bop [compiled]")
    lines = []
    if bop is not None:
        verdict = "meets" if bop["ratio_to_floor"] <= BOP_GOAL else "misses"
        text = (
            f"- Bop (compiled) runs at **{bop['ratio_to_floor']:.2f} x** its floor: it {verdict} "
            f"the goal of {BOP_GOAL}."
        )
        if bop["ratio_to_floor"] < 1:
            text += (
                " A ratio below 1 can only be timing noise, since the floor is a lower bound: "
                f"the ratio of the fastest steps, {bop['min_ratio_to_floor']:.2f}, is the "
                "steadier estimate here."
            )
        lines.append(text)
    bayes = by_name.get("BayesBiNN [S=1]")
    if bayes is not None:
        noise = by_name.get("BayesBiNN noise alone (uniform_+logit_)")
        noise_text = (
            f" Drawing the logistic noise alone takes {noise['median_ms']:.1f} ms"
            f" ({noise['median_ms'] / bayes['median_ms']:.0%} of the step)."
            if noise
            else ""
        )
        lines.append(
            f"- BayesBiNN runs at **{bayes['ratio_to_floor']:.2f} x** its floor. The floor "
            "counts bytes only. BayesBiNN also draws one random number per weight and computes "
            "two tanh and a logit per weight, and it runs about twenty whole-vector kernels "
            "in the reference implementation's order of operations, so that its float32 "
            f"results match the reference's (spec P-A2).{noise_text} Its goal is stated per "
            "epoch (below), not per step."
        )
    else:
        lines.append(
            "- This file has no BayesBiNN rows: `bench_optim.py` adds them when run as a script "
            "(`benchmarks/run_all.py --only optim`)."
        )
    adam = by_name.get("torch Adam (foreach=True)")
    if adam is not None and bop is not None:
        lines.append(
            f"- For scale: torch's Adam (foreach) takes {adam['median_ms']:.1f} ms on the same "
            f"tensors, {adam['median_ms'] / bop['median_ms']:.1f} x compiled Bop (Adam must "
            "move seven streams, and runs them as several unfused passes)."
        )
    display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Training step: binary against float
#
# The same architecture is trained three ways, with the same layers, norms and batch:
#
# binary
# : $\pm 1$ weights and `ste_sign` activations, trained by the seed recipe's optimizer (Bop on
#   the binary kernels, Adam on the norms), as `bnnlib.experiment.recipes` builds it;
#
# latent
# : the STE baseline: real latent weights seen through `ste_sign`, trained with clipped Adam;
#
# float
# : real weights, with each `ste_sign` activation replaced by `hardtanh` (the function whose
#   gradient `ste_sign` passes), trained with Adam on every parameter.
#
# The architectures are the binary MLP for MNIST (784-2048-2048-10) and BinaryNet narrowed 4x for
# CIFAR-10. The inputs are fixed random batches, so no data loading is timed. Each phase is
# timed on its own: forward (model and loss), backward, and optimizer (step and `zero_grad`).

# %% tags=["remove-input"]
if not missing("train"):
    quick_warning("train")
    train = results["train"]
    s = train["settings"]
    display(
        Markdown(
            f"Median of {s['rounds']} steps after {s['warmup']} warm-up steps on {s['device']}."
        )
    )
    for arch in train["architectures"]:
        frame = pd.DataFrame(
            [
                {
                    "variant": v["variant"],
                    "forward ms": ms(v["forward_ms"]),
                    "backward ms": ms(v["backward_ms"]),
                    "optimizer ms": ms(v["optimizer_ms"]),
                    "step ms": ms(v["total_ms"]),
                    "images/s": f"{v['images_per_s']:,.0f}",
                    "first step s": f"{v['first_step_s']:.1f}",
                }
                for v in arch["variants"]
            ]
        ).set_index("variant")
        display(
            Markdown(
                f"### {arch['name']}, batch {arch['batch_size']}\n\n"
                f"binary / float = **{arch['ratio_binary_float']:.2f}**, "
                f"latent / float = {arch['ratio_latent_float']:.2f}."
            )
        )
        display(frame)
        display(
            Markdown(
                "Optimizers, with the number of elements each one steps: "
                + "; ".join(f"{v['variant']}: {v['optimizer']}" for v in arch["variants"])
                + "."
            )
        )
        over = arch["overhead_ms"]
        total = sum(over.values())
        parts = ", ".join(f"{phase} {delta:+.1f} ms" for phase, delta in over.items())
        text = f"Binary minus float, per phase: {parts} (total {total:+.1f} ms)."
        if arch["ratio_binary_float"] > EXPLAIN_ABOVE and total > 0:
            largest = max(over, key=over.get)
            text += (
                f" The ratio is above {EXPLAIN_ABOVE}. Most of the extra time is in the "
                f"**{largest}** phase ({over[largest] / total:.0%} of it); the reasons are "
                "explained below."
            )
        display(Markdown(text))

# %% [markdown]
# **Where a binary step's extra time goes.** The matrix products are identical: binary weights
# are stored as float32 $\pm 1$, because torch has no 1-bit matrix product, so binary and float
# do the same floating-point work. The binary network does not take the sign of its weights
# (they already are $\pm 1$); only the latent baseline does, with `ste_sign` on every weight in
# every forward pass. What differs:
#
# - **Forward.** Every binarised activation goes through `ste_sign`, a Python
#   `torch.autograd.Function`. It computes `sgn+` with `torch.where` and saves its input for
#   backward. `hardtanh` is a single native kernel. On BinaryNet's large convolutional feature
#   maps, that extra pass over the activations (plus the autograd bookkeeping) is most of the
#   forward overhead.
# - **Backward.** `ste_sign`'s gradient $g \cdot 1_{|x| \le 1}$ is computed as four element-wise
#   kernels (abs, compare, cast, multiply), whereas `hardtanh_backward` is one.
# - **Optimizer.** Bop reads and writes fewer bytes than Adam. With the compiled kernel, its step
#   is cheaper than Adam's. Below $2^{20}$ binary weights, the automatic choice is `foreach`
#   because compiling would cost more than it saves at that size. That path makes a dozen or
#   more separate passes over the weights (more with flip counting, which the recipes turn on),
#   so there Bop can cost more than Adam, though only by milliseconds per step. The line under
#   each table says which path each architecture took.
#
# The latent baseline pays for both: `ste_sign` on every weight in every forward pass, and Adam
# with weight clipping.
#
# ## Peak memory of a BinaryNet training step

# %% tags=["remove-input"]
if not missing("memory"):
    quick_warning("memory")
    mem = results["memory"]
    s, d = mem["settings"], mem["deployed"]
    display(
        Markdown(
            f"`{s['model']}` at width {s['width']:g}, batch {s['batch_size']}, input "
            f"{tuple(s['input_shape'])}, on {s['device']}. Each case runs in a fresh process. "
            f"Peak = the highest memory during {s['measured_steps']} steady training step(s), "
            f"taken after {s['warmup_steps']} warm-up step(s), minus the memory after the model, "
            "optimizer and batch were built. On CPU, memory is the resident set size "
            "(`/proc/self/status`: the high-water mark, reset after warm-up). glibc maps every "
            f"block of {s['malloc_mmap_threshold'] // 1024} KiB or more directly, so freed "
            "tensors leave the resident set at once. On CUDA, memory is "
            "`torch.cuda.max_memory_allocated`."
        )
    )
    frame = pd.DataFrame(
        [
            {
                "case": c["case"],
                "step peak MiB": f"{c['step_peak_over_baseline_mib']:,.0f}",
                "params MiB": f"{c['params_mib']:,.1f}",
                "grads MiB": f"{c['grads_mib']:,.1f}",
                "optimizer state MiB": f"{c['optimizer_state_mib']:,.1f}",
                "state bytes / binary weight": next(
                    f"{v:.1f}" for v in c["optimizer_state_bytes_per_weight"].values()
                ),
                "saved activations MiB": f"{c['saved_activations_mib']:,.1f}",
            }
            for c in mem["cases"]
        ]
    ).set_index("case")
    display(frame)
    display(
        Markdown(
            "Optimizers, with the number of elements each one steps: "
            + "; ".join(f"{c['case']}: {c['optimizer']}" for c in mem["cases"])
            + ". The state column is the first optimizer's state (of the float model: Adam's)."
        )
    )
    display(
        Markdown(
            f"Stored for deployment (`bnnlib.summary`): the binary BinaryNet packs its "
            f"{d['total_binary']:,} 1-bit weights eight to a byte. Together with its "
            f"{d['total_float']:,} float parameters and {d['total_buffers']:,} buffer values, "
            f"it takes **{d['memory_bytes'] / 2**20:.2f} MiB**, against "
            f"{d['float_memory_bytes'] / 2**20:.2f} MiB in float32 "
            f"({d['compression_ratio']:.1f} x smaller)."
        )
    )

# %% [markdown]
# The params, grads, optimizer state and saved activations columns are exact byte counts of
# tensors, which do not depend on the allocator. "saved activations" are the tensors autograd keeps for the backward pass (counted
# with `saved_tensors_hooks`, parameters excluded). The step peak adds temporaries and allocator
# slack to these, and, for compiled Bop, the compiled code. A binary network's training memory
# is not much smaller than its float twin's: its weights are float32 $\pm 1$, and the
# activations dominate. What it saves is optimizer state. Bop keeps $m$ (4 bytes per weight).
# With flip counting compiled in, it also keeps two int8 sign snapshots (2 bytes). Bop2ndOrder
# keeps $m$ and $v$ (8 bytes), and Adam keeps two moments (8 bytes) next to a latent weight.
# The 1-bit packing pays off in the stored model, not during training.
#
# ## BayesBiNN against STE: one MNIST epoch
#
# The goal: an epoch of BayesBiNN on the paper's MLP (784-2048-2048-2048-10, batch 100) should
# take at most 1.3 times bnnlib's STE epoch on the same MLP and machine, with unchanged
# accuracy. Both methods train through the path every run takes (`bnnlib.experiment.runs.prepare`,
# `Trainer.train_epoch`). Their recipes keep the paper's 500-epoch cosine schedule, so this
# epoch is the first epoch of the paper's run. Medians of single steps, taken afterwards in
# interleaved rounds, give a second estimate that load on the machine affects less.

# %% tags=["remove-input"]
if not missing("bayesbinn"):
    quick_warning("bayesbinn")
    bb = results["bayesbinn"]
    s = bb["settings"]
    first = bb["methods"][0]
    display(
        Markdown(
            f"`{s['model']}` on {first['dataset_label']}: {first['train_size']:,} training "
            f"images ({'the full training split less the 10 % validation split' if s['train_subset'] is None else 'a class-stratified subset'}), "
            f"{first['test_size']:,} test images, one epoch, batch {s['batch_size']}, "
            f"{s['device']}; step medians over {s['rounds']} rounds."
        )
    )
    frame = pd.DataFrame(
        [
            {
                "method": r["method"],
                "epoch s": f"{r['epoch_s']:,.1f}",
                "median step ms": ms(r["step_median_ms"]),
                "steps": r["steps_per_epoch"],
                "epoch from median s": f"{r['epoch_from_median_s']:,.1f}",
                "train acc": f"{r['train_acc']:.2%}",
                "test acc after the epoch": f"{r['test_acc']:.2%}",
            }
            for r in bb["methods"]
        ]
    ).set_index("method")
    display(frame)
    verdict = "meets" if bb["ratio_epoch"] <= bb["goal_ratio"] else "misses"
    display(
        Markdown(
            f"BayesBiNN / STE: epoch **{bb['ratio_epoch']:.2f}**, median step "
            f"{bb['ratio_step_median']:.2f}. The epoch ratio {verdict} the goal of "
            f"{bb['goal_ratio']}. Each step's forward and backward pass is the same dense MLP "
            "for both methods. BayesBiNN adds its whole-vector update over all the weights "
            "(see the optimizer table), and STE adds Adam with weight clipping."
        )
    )

# %% [markdown]
# The test accuracies are our own runs' values after one epoch. They show that the fast
# BayesBiNN path learns as the method should at this point in the schedule. They are not
# the paper's 500-epoch result.
#
# ## Building the book
#
# Measured on a copy of the files a clone holds (tracked files plus uncommitted, not-ignored
# ones), in a fresh interpreter per build. **Cold** starts without `_build`, so every notebook
# runs and trains its smoke runs. A **rebuild with nothing changed** skips every notebook (its
# inputs digest is unchanged) and gives Sphinx nothing to write. **Forced** re-executes every
# notebook, but its runs load from the records the cold build wrote.

# %% tags=["remove-input"]
if not missing("book"):
    quick_warning("book")
    book = results["book"]
    s = book["settings"]
    timed = {n["name"] for n in book["cold"]["notebooks"]}
    untimed = [d for d in toc_documents(runtime.root) if d.startswith("notebooks/")]
    untimed = [d for d in untimed if d not in timed and d.split("/")[-1] not in timed]
    display(
        Markdown(
            f"`bnnlib-book build --profile {s['profile']}`, {len(s['notebooks'])} notebook(s), "
            f"recorded {book['date']}; rebuild: median of {s['rebuilds']}."
            + (
                f" Pages added since that recording, not in its timings: {', '.join(untimed)} "
                "(`python benchmarks/bench_book.py` records them)."
                if untimed
                else ""
            )
        )
    )
    display(
        pd.DataFrame(
            [
                {
                    "build": "cold (fresh checkout)",
                    "wall s": f"{book['cold']['wall_s']:.1f}",
                    "Sphinx s": f"{book['cold']['sphinx_s']:.1f}",
                },
                {"build": "rebuild, nothing changed", "wall s": f"{book['rebuild_wall_s']:.1f}"},
                {
                    "build": "--force (runs cached)",
                    "wall s": f"{book['forced']['wall_s']:.1f}",
                    "Sphinx s": f"{book['forced']['sphinx_s']:.1f}",
                },
            ]
        )
        .fillna("-")
        .set_index("build")
    )
    display(
        pd.DataFrame(
            [
                {"notebook": n["name"], "cold s": f"{n['seconds']:.1f}"}
                for n in book["cold"]["notebooks"]
            ]
        ).set_index("notebook")
    )
