"""bnnlib works with its own dependencies only (torch, torchvision, numpy, pillow, pyyaml, tqdm).

A subprocess blocks the book's dependencies (and bnnlib_book) with a ``sys.meta_path`` finder, so
importing them raises ImportError, imports every module of bnnlib, and trains a tiny binary MLP for one epoch
on synthetic data through the library's recipe and trainer, writes and reads back its run record,
and runs the ``bnnlib summary`` command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BLOCKED = (
    "altair",
    "pandas",
    "ipywidgets",
    "papermill",
    "jupytext",
    "sphinx",
    "jupyter_book",
    "matplotlib",
    "nbformat",
    "IPython",
    "bnnlib_book",
)

SUBPROCESS = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import importlib.machinery
    import json
    import math
    import pkgutil
    import sys
    from pathlib import Path

    args = json.loads(Path(sys.argv[1]).read_text())
    repo = Path(args["repo"]).resolve()
    blocked = set(args["blocked"])


    class Refuse(importlib.abc.Loader):
        def create_module(self, spec):
            raise ModuleNotFoundError(f"{spec.name} is blocked: not a bnnlib dependency", name=spec.name)

        def exec_module(self, module):
            raise ModuleNotFoundError(f"{module.__name__} is blocked", name=module.__name__)


    class BlockBookDependencies(importlib.abc.MetaPathFinder):
        # ``import pandas`` raises ModuleNotFoundError. A probe with importlib.util.find_spec
        # (torch._dynamo probes optional libraries when it is imported) gets a spec without an
        # origin instead of an exception: such a probe expects None or a spec, not an error.

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                return importlib.machinery.ModuleSpec(name, Refuse(), origin=None)
            return None


    preloaded = sorted(n for n in sys.modules if n.split(".")[0] in blocked)
    assert not preloaded, preloaded
    sys.meta_path.insert(0, BlockBookDependencies())
    sys.path.insert(0, str(repo))
    try:
        import pandas  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("the blocking finder did not block pandas")

    import torch

    import bnnlib
    import bnnlib.cli
    import bnnlib.experiment.runs

    assert repo in Path(bnnlib.__file__).resolve().parents, bnnlib.__file__
    for info in pkgutil.walk_packages(bnnlib.__path__, "bnnlib."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            importlib.import_module(info.name)

    from bnnlib.experiment.config import RunConfig
    from bnnlib.experiment.recipes import build_model, build_recipe
    from bnnlib.experiment.records import RunRecord, load_records
    from bnnlib.experiment.runs import resolve_config
    from bnnlib.train.trainer import CHECKPOINT_NAME, Trainer


    class Loader:
        def __init__(self, x, y, batch_size):
            self.x, self.y, self.batch_size = x, y, batch_size

        def __iter__(self):
            for i in range(0, len(self.x), self.batch_size):
                yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]

        def __len__(self):
            return math.ceil(len(self.x) / self.batch_size)

        def set_epoch(self, epoch):
            pass


    torch.manual_seed(0)
    cfg = resolve_config(
        RunConfig(
            model="binary_mlp",
            dataset="mnist",
            hparams_set="bop",
            hparams={"epochs": 1, "batch_size": 16},
            model_kwargs={"width": 0.125},
        )
    )
    model = build_model(cfg)
    recipe = build_recipe(cfg, model, 64)
    trainer = Trainer(
        model, recipe.optimizer, recipe.loss_fn, task=cfg.task, scheduler=recipe.scheduler,
        progress=False,
    )
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    before = [p.detach().clone() for p in model.parameters()]
    work = Path(args["work"])
    history = trainer.fit(
        Loader(x, y, 16), 1, test=Loader(x[:32], y[:32], 16), checkpoint_dir=work / "ckpt"
    )
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"]), history
    assert 0.0 <= history[0]["test_acc"] <= 1.0, history
    assert (work / "ckpt" / CHECKPOINT_NAME).is_file()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))

    record = RunRecord(cfg.key(), cfg.to_dict(), history, history[-1], {"test": True})
    record.save(work / "records" / f"{cfg.key()}.json")
    assert [r.key for r in load_records(work / "records")] == [cfg.key()]

    assert bnnlib.cli.main(["summary", "binary_mlp", "--hparams", "width=0.125"]) == 0

    leaked = sorted(n for n in sys.modules if n.split(".")[0] in blocked)
    assert not leaked, leaked
    print("ok")
    """
)


def test_bnnlib_trains_with_only_its_own_dependencies(tmp_path: Path) -> None:
    args = {"repo": str(REPO_ROOT), "blocked": list(BLOCKED), "work": str(tmp_path / "work")}
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "check.py").write_text(SUBPROCESS)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "check.py"), str(tmp_path / "args.json")],
        cwd=cwd,
        env=env | {"OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.rstrip().endswith("ok"), proc.stdout
