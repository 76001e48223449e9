"""Layer-by-layer binarization: the sign weights, the networks, the orders and schedule (spec
B.1-B.10 test vectors), the callback through the Trainer, and resume across a switch."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from bnnlib.experiment.config import RunConfig
from bnnlib.experiment.recipes import _schedules, build_recipe
from bnnlib.layers import SwitchableConv2d, SwitchableLinear, switchable_layers
from bnnlib.methods.layerwise import (
    LayerBinarization,
    binary_at,
    layer_names,
    layerwise_callback,
    resolve_order,
    sensitivity_order,
    switch_epochs,
)
from bnnlib.models import create_model
from bnnlib.optim import MultiStep, PerEpoch
from bnnlib.optim.registry import create_optimizer
from bnnlib.quantizers import torch_sign
from bnnlib.train.trainer import Trainer
from tests.conftest import FixedBatches, needs_mnist

# -- the sign weights ---------------------------------------------------------------------------


def test_torch_sign_keeps_zero_and_passes_the_gradient_unchanged():
    w = torch.tensor([0.3, -0.05, 0.0, 2.5], requires_grad=True)
    out = torch_sign(w)
    assert out.tolist() == [1.0, -1.0, 0.0, 1.0]
    out.backward(torch.tensor([1.0, -2.0, 3.0, 4.0]))
    assert w.grad.tolist() == [1.0, -2.0, 3.0, 4.0]  # no |w| <= 1 cancellation


def test_binary_forward_is_spec_tv_b2_and_its_gradient_reaches_the_latent_weight():
    layer = SwitchableLinear(3, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.3, -0.05, 0.0]]))
        layer.bias.fill_(0.1)
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert layer(x).item() == pytest.approx(0.3 * 1 - 0.05 * 2 + 0.1)  # float
    layer.binary = True
    out = layer(x)
    assert out.item() == pytest.approx(-0.9)
    out.backward(torch.tensor([[2.0]]))
    assert layer.weight.grad.tolist() == [[2.0, 4.0, 6.0]]  # x * upstream, unchanged


def test_the_binary_flag_travels_in_the_state_dict():
    a, b = create_model("mlp300"), create_model("mlp300")
    a.fc2.binary = True
    b.load_state_dict(a.state_dict())
    assert [layer.binary for _, layer in switchable_layers(b)] == [False, True, False]
    conv = SwitchableConv2d(3, 4, 3)
    with pytest.raises(ValueError, match="binary"):
        conv.set_extra_state({"binary": 1})


# -- the networks (spec B.3/B.6 weight counts) --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "counts"),
    [
        ("mlp300", (1, 28, 28), [235_200, 30_000, 1_000]),
        ("mlp784", (1, 28, 28), [614_656, 614_656, 7_840]),
        ("vgg5", (3, 32, 32), [1_728, 36_864, 4_194_304, 65_536, 2_560]),
        (
            "vgg9",
            (3, 32, 32),
            [1_728, 36_864, 73_728, 147_456, 294_912, 589_824, 1_048_576, 65_536, 2_560],
        ),
    ],
)
def test_networks_have_the_released_layers_and_weight_counts(name, shape, counts):
    model = create_model(name)
    assert [layer.weight.numel() for _, layer in switchable_layers(model)] == counts
    assert model.eval()(torch.randn(2, *shape)).shape == (2, 10)


def test_resnet20_layers_in_forward_order_with_option_a_shortcuts():
    model = create_model("resnet20")
    layers = switchable_layers(model)
    counts = [layer.weight.numel() for _, layer in layers]
    assert counts == [432] + [2_304] * 6 + [4_608] + [9_216] * 5 + [18_432] + [36_864] * 5 + [640]
    assert sum(counts) == 268_336
    assert layers[7][0] == "layer2.0.conv1" and layers[-1][0] == "fc"
    assert layers[-1][1].bias is not None and all(m.bias is None for _, m in layers[:-1])
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet21_counts_the_downsample_convolutions_after_their_blocks_conv2():
    with torch.device("meta"):
        model = create_model("resnet21")
    layers = switchable_layers(model)
    names = [n for n, _ in layers]
    assert len(layers) == 21 and sum(m.weight.numel() for _, m in layers) == 11_678_912
    assert names[5:8] == ["layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"]
    assert [m.weight.numel() for _, m in layers][:8] == [9_408] + [36_864] * 4 + [
        73_728,
        147_456,
        8_192,
    ]


def test_a_model_without_switchable_layers_is_refused():
    with pytest.raises(ValueError, match="no switchable layers"):
        layer_names(create_model("binary_mlp"))


# -- orders -------------------------------------------------------------------------------------

MLP = ["fc1", "fc2", "fc3"]


@pytest.mark.parametrize(
    ("spec", "order"),
    [
        ("forward", ["fc1", "fc2", "fc3"]),
        ("reverse", ["fc3", "fc2", "fc1"]),
        ("132", ["fc1", "fc3", "fc2"]),
        ("213", ["fc2", "fc1", "fc3"]),
        ("231", ["fc2", "fc3", "fc1"]),
        ("312", ["fc3", "fc1", "fc2"]),
        ("2", ["fc2"]),
        ("L3, fc1", ["fc3", "fc1"]),
        ("none", []),
        ("all", MLP),
    ],
)
def test_orders_resolve_to_layer_names(spec, order):
    assert resolve_order(spec, MLP) == order


def test_the_released_vgg5_orders_written_as_layer_numbers():
    names = layer_names(create_model("vgg5"))
    assert resolve_order("L5,L4,L1,L3,L2", names) == ["fc3", "fc2", "conv1", "fc1", "conv2"]


def test_random_orders_follow_order_seed_not_the_run():
    names = [f"l{i}" for i in range(20)]
    a, b = (
        resolve_order("random", names, order_seed=3),
        resolve_order("random", names, order_seed=3),
    )
    assert a == b and sorted(a) == sorted(names) and a != names
    assert resolve_order("random", names, order_seed=4) != a


def test_ascend_and_descend_sort_by_the_sensitivity_scores():
    scores = {"fc1": 0.97, "fc2": 0.95, "fc3": 0.95}
    assert sensitivity_order(scores, MLP) == ["fc2", "fc3", "fc1"]  # ties keep layer order
    assert resolve_order("ascend", MLP, scores=scores) == ["fc2", "fc3", "fc1"]
    assert resolve_order("descend", MLP, scores=scores) == ["fc1", "fc3", "fc2"]


@pytest.mark.parametrize(
    ("spec", "layers", "match"),
    [
        ("14", MLP, "layer 4 does not exist"),
        ("11", MLP, "names a layer twice"),
        ("upward", MLP, "neither an order"),
        ("ascend", MLP, "sensitivity_runs"),
        ("12", [f"l{i}" for i in range(12)], "digit orders name layers 1-9"),
        ("", MLP, "non-empty"),
    ],
)
def test_bad_orders_name_the_problem(spec, layers, match):
    with pytest.raises(ValueError, match=match):
        resolve_order(spec, layers)


# -- the schedule (spec TV-B1) -------------------------------------------------------------------


def test_tv_b1_mnist_order_132():
    switches = switch_epochs(resolve_order("132", MLP), 150)
    assert {e: binary_at(switches, e) for e in (1, 150)} == {1: ["fc1"], 150: ["fc1"]}
    assert binary_at(switches, 151) == binary_at(switches, 300) == ["fc1", "fc3"]
    assert binary_at(switches, 301) == binary_at(switches, 450) == ["fc1", "fc3", "fc2"]


def test_tv_b1_vgg9_resnet20_and_the_imagenet_epochs():
    vgg9 = switch_epochs([f"L{k}" for k in range(1, 10)], 150)
    assert [vgg9[f"L{k}"] for k in range(1, 10)] == [150 * (k - 1) + 1 for k in range(1, 10)]
    assert len(binary_at(vgg9, 1200)) == 8 and len(binary_at(vgg9, 1201)) == 9
    resnet20 = switch_epochs([f"L{k}" for k in range(1, 21)], 50)
    assert resnet20["L20"] == 951
    # ImageNet's 0-based epochs e are our e + 1: {pi_1} in 0 and 1, {pi_1, pi_2} in 2, all from 40.
    imagenet = switch_epochs([f"L{k}" for k in range(1, 22)], 2)
    assert binary_at(imagenet, 1) == binary_at(imagenet, 2) == ["L1"]
    assert binary_at(imagenet, 3) == ["L1", "L2"]
    assert len(binary_at(imagenet, 40)) == 20 and len(binary_at(imagenet, 41)) == 21


def test_all_binary_switches_every_layer_at_epoch_one():
    assert switch_epochs(MLP, 150, all_binary=True) == {"fc1": 1, "fc2": 1, "fc3": 1}
    with pytest.raises(ValueError, match="epochs_per_layer"):
        switch_epochs(MLP, 0)


# -- optimizers and schedules of the released scripts (TV-B3, TV-B4, P-B6) -----------------------


def _layer(w: list[float]) -> SwitchableLinear:
    layer = SwitchableLinear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([w]))
    layer.binary = True
    return layer


def test_tv_b3_sgd_momentum_and_weight_decay_on_the_latent_weights():
    layer = _layer([0.3, -0.05, 0.0])
    opt = create_optimizer("sgd", layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for g, want in [
        ([0.2, -0.1, 0.5], [0.279997, -0.0399995, -0.05]),
        ([0.2, 0.6, -0.5], [0.2419915, -0.09099865, -0.0449995]),
    ]:
        layer.weight.grad = torch.tensor([g])
        opt.step()
        assert layer.weight[0].tolist() == pytest.approx(want, abs=1e-7)
        assert layer.used_weight()[0].tolist() == [1.0, -1.0, -1.0]


def test_tv_b4_first_adam_step_moves_each_latent_weight_by_lr():
    layer = _layer([0.3, -0.05, 0.0])
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3, eps=1e-8)
    layer.weight.grad = torch.tensor([[0.2, -0.1, 0.5]])
    opt.step()
    assert layer.weight[0].tolist() == pytest.approx([0.299, -0.049, -0.001], abs=1e-7)
    assert layer.used_weight()[0].tolist() == [1.0, -1.0, -1.0]


def test_multistep_is_stepped_before_each_epoch():
    lr = PerEpoch(MultiStep(0.1, (1000, 1100)), steps_per_epoch=10, offset=1)
    at = {epoch: lr((epoch - 1) * 10) for epoch in (1, 999, 1000, 1099, 1100, 1200)}
    assert at == pytest.approx(
        {1: 0.1, 999: 0.1, 1000: 0.01, 1099: 0.01, 1100: 0.001, 1200: 0.001}, rel=1e-9
    )
    hp = RunConfig(model="resnet20", dataset="cifar10", hparams_set="layer").resolve().hparams
    sched = _schedules(hp, 45_000, 351)["lr"]
    assert sched(999 * 351 - 1) == pytest.approx(0.1) and sched(999 * 351) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="increasing"):
        MultiStep(0.1, (5, 3))


def test_the_resnet_sgd_recipe_builds():
    """SGD takes the whole model, as BayesBiNN does, but has no trainset_scale key."""
    cfg = RunConfig(model="resnet20", dataset="cifar10", hparams_set="layer").resolve()
    recipe = build_recipe(cfg, create_model("resnet20"), 45_000)
    assert isinstance(recipe.optimizer, torch.optim.SGD)
    assert recipe.optimizer.param_groups[0]["weight_decay"] == 1e-4


def test_the_released_sets_are_resolved_with_their_epochs():
    def hp(model, name, **over):
        return RunConfig(model=model, dataset="mnist", hparams_set=name, hparams=over)

    mlp = hp("mlp300", "layer").resolve().hparams
    assert (mlp["epochs"], mlp["epochs_per_layer"], mlp["lr"], mlp["batch_size"]) == (
        450,
        150,
        0.1,
        100,
    )
    assert mlp["validation_tail"] == 5000 and mlp["optimizer"] == "adam"
    assert hp("mlp300", "sensitivity").resolve().hparams["epochs"] == 150
    res = RunConfig(model="resnet20", dataset="cifar10", hparams_set="float").resolve().hparams
    assert res["epochs"] == 1200 and res["binarize_order"] == "none"
    with pytest.raises(ValueError, match="lr_milestones"):
        RunConfig(
            model="resnet20",
            dataset="cifar10",
            hparams_set="layer",
            hparams={"lr_milestones": [9, 3]},
        ).resolve()
    with pytest.raises(ValueError, match="unknown hparams key 'binarize_order'"):
        RunConfig(
            model="binary_mlp", dataset="mnist", hparams_set="bop", hparams={"binarize_order": "1"}
        ).resolve()


# -- the callback through the Trainer -----------------------------------------------------------


def _batches(n: int = 3, seed: int = 0) -> FixedBatches:
    g = torch.Generator().manual_seed(seed)
    return FixedBatches(
        [
            (torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g))
            for _ in range(n)
        ]
    )


def _trainer(model: nn.Module, callback: LayerBinarization) -> Trainer:
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    return Trainer(
        model,
        opt,
        nn.CrossEntropyLoss(),
        callbacks=[callback],
        progress=False,
        handle_signals=False,
    )


@pytest.mark.parametrize("spec", ["forward", "reverse", "132", "213", "231", "312", "none", "all"])
def test_every_order_binarizes_its_layers_epoch_by_epoch(spec, one_thread):
    torch.manual_seed(0)
    model = create_model("mlp300", hidden=(12, 8))
    hp = {"binarize_order": spec, "epochs_per_layer": 2}
    trainer = _trainer(model, layerwise_callback(model, hp))
    history = trainer.fit(_batches(), 7)
    order = resolve_order(spec, MLP)
    for h in history:
        e = h["epoch"]
        want = order if spec == "all" else order[: min(len(order), (e - 1) // 2 + 1)]
        assert h["binary_layers"] == want
    assert [m.binary for _, m in switchable_layers(model)] == [n in order for n in MLP]


def test_a_switch_leaves_the_weights_and_the_optimizer_state_alone(one_thread):
    torch.manual_seed(0)
    model = create_model("mlp300", hidden=(12, 8))
    callback = layerwise_callback(model, {"binarize_order": "forward", "epochs_per_layer": 1})
    trainer = _trainer(model, callback)
    trainer.fit(_batches(), 1)
    before = copy.deepcopy(trainer.optimizer.state_dict()), copy.deepcopy(model.state_dict())
    callback.on_epoch_start(trainer, 2)
    assert model.fc2.binary and not model.fc3.binary
    opt_state, weights = trainer.optimizer.state_dict(), model.state_dict()
    for k, v in before[0]["state"].items():
        for name, t in v.items():
            assert torch.equal(t, opt_state["state"][k][name])
    assert all(torch.equal(v, weights[k]) for k, v in before[1].items() if torch.is_tensor(v))


def test_resume_across_a_switch_ends_bit_identical(tmp_path, one_thread):
    hp = {"binarize_order": "231", "epochs_per_layer": 2}

    def fresh() -> Trainer:
        torch.manual_seed(0)
        model = create_model("mlp300", hidden=(12, 8))
        return _trainer(model, layerwise_callback(model, hp))

    straight = fresh()
    straight.fit(_batches(), 5)
    first = fresh()
    first.fit(_batches(), 3, checkpoint_dir=tmp_path)  # stops inside the second layer's epochs
    resumed = fresh()
    resumed.fit(_batches(), 5, checkpoint_dir=tmp_path)
    assert resumed.epoch == 5
    ours = resumed.model.state_dict()
    for k, a in straight.model.state_dict().items():
        if torch.is_tensor(a):
            assert torch.equal(a, ours[k]), k
    assert [h["binary_layers"] for h in resumed.history] == [
        h["binary_layers"] for h in straight.history
    ]


def test_tv_b5_the_reset_quirk_writes_back_the_signs_before_the_last_step(one_thread):
    torch.manual_seed(0)
    model = create_model("mlp300", hidden=(12, 8))
    hp = {"binarize_order": "1", "epochs_per_layer": 5, "reset_latent_to_sign": True}
    callback = layerwise_callback(model, hp)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    class Loop:
        optimizer = opt

    callback.on_epoch_start(Loop, 1)
    x, y = _batches(2).batches[0]
    snapshots = []
    for _ in range(2):
        snapshots.append({n: m.weight.detach().clone() for n, m in switchable_layers(model)})
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert not torch.equal(model.fc1.weight, torch.sign(snapshots[-1]["fc1"]))
    callback.on_train_epoch_end(Loop, 1)
    assert torch.equal(model.fc1.weight, torch.sign(snapshots[-1]["fc1"]))  # binary: its sign
    assert torch.equal(model.fc2.weight, snapshots[-1]["fc2"])  # float: the last step undone
    off = layerwise_callback(model, {"binarize_order": "1", "epochs_per_layer": 5})
    kept = model.fc2.weight.detach().clone()
    off.on_train_epoch_end(Loop, 1)
    assert torch.equal(model.fc2.weight, kept)


# -- data and sensitivity through the run path --------------------------------------------------


def test_tail_split_holds_out_the_last_images_in_order():
    from bnnlib.data.splits import tail_split

    train, val = tail_split(60_000, 5_000)
    assert (train[0], train[-1], val[0], val[-1], len(val)) == (0, 54_999, 55_000, 59_999, 5_000)
    with pytest.raises(ValueError, match="validation_tail"):
        tail_split(10, 10)


@needs_mnist
def test_mnist_validation_is_the_last_5000_training_images():
    from bnnlib.data import build_loaders
    from bnnlib.data.registry import load_dataset

    data = build_loaders("mnist", "mnist_standardize", 100, validation_tail=5000)
    assert (data.train.num_samples, data.val.num_samples) == (55_000, 5_000)
    _, arrays = load_dataset("mnist")
    x, y = next(iter(data.val))
    assert torch.equal(y, torch.from_numpy(np.asarray(arrays.train_y[55_000:55_100])).long())
    with pytest.raises(ValueError, match="set one of them"):
        build_loaders("mnist", "mnist_standardize", 100, validation_split=0.1, validation_tail=10)


@needs_mnist
def test_ascend_reads_the_ranking_from_the_sensitivity_records(tmp_path, one_thread):
    from bnnlib.experiment.runs import prepare, run

    small = {"epochs": 1, "epochs_per_layer": 1, "train_subset": 300, "test_subset": 200}
    keys, scores = [], {}
    for layer in ("1", "2", "3"):
        cfg = RunConfig(
            model="mlp300",
            dataset="mnist",
            hparams_set="sensitivity",
            hparams={**small, "binarize_order": layer},
            model_kwargs={"hidden": [16, 8]},
        )
        rec = run(cfg, tmp_path, progress=False)
        keys.append(rec.key)
        scores[rec.history[0]["binary_layers"][0]] = rec.history[0]["val_acc"]
    for spec in ("ascend", "descend"):
        cfg = RunConfig(
            model="mlp300",
            dataset="mnist",
            hparams_set="layer",
            hparams={**small, "binarize_order": spec, "sensitivity_runs": keys},
            model_kwargs={"hidden": [16, 8]},
        )
        trainer = prepare(cfg, progress=False, results_dir=tmp_path).trainer
        (callback,) = [c for c in trainer.callbacks if isinstance(c, LayerBinarization)]
        order = sorted(MLP, key=lambda n: (scores[n], MLP.index(n)))
        assert list(callback.switches) == (order if spec == "ascend" else order[::-1])
    missing = RunConfig(
        model="mlp300",
        dataset="mnist",
        hparams_set="layer",
        hparams={**small, "binarize_order": "ascend", "sensitivity_runs": ["0123456789ab"]},
    )
    with pytest.raises(ValueError, match="no record"):
        run(missing, tmp_path, progress=False)
    assert not (tmp_path / f"{missing.key()}.json").exists()


def test_every_permutation_of_three_layers_is_a_digit_order():
    for perm in itertools.permutations("123"):
        assert sorted(resolve_order("".join(perm), MLP)) == MLP


# -- the CLI: one command per released script ----------------------------------------------------


@needs_mnist
def test_cli_dry_run_of_a_released_script_matches_the_config_key(capsys):
    import json

    from bnnlib.cli import main

    assert (
        main(["iterative", "layer", "mlp300", "132", "--lr", "0.1", "--seed", "316", "--dry-run"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    cfg = RunConfig(
        model="mlp300",
        dataset="mnist",
        hparams_set="layer",
        hparams={"binarize_order": "132", "lr": 0.1},
        seed=316,
    )
    assert out["key"] == cfg.key() and out["train_samples"] == 55_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["iterative", "layer", "mlp300", "14"], "layer 4 does not exist"),
        (["iterative", "float", "mlp300", "132"], "takes no order"),
        (["iterative", "layer", "mlp300"], "needs an ORDER"),
        (["iterative", "layer", "mlp300", "ascend"], "sensitivity_runs"),
        (["iterative", "layer", "binary_mlp", "forward"], "unknown hparams set"),
    ],
)
def test_cli_refuses_bad_input_before_work(argv, message, capsys, tmp_path):
    from bnnlib.cli import main

    assert main([*argv, "--logdir", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("rotation", "layer"), [("forward", "1"), ("231", "2"), ("reverse", "3")])
def test_cli_sensitivity_binarizes_the_first_layer_of_the_scripts_rotation(rotation, layer):
    import argparse

    from bnnlib.cli import _iterative_order

    args = argparse.Namespace(kind="sensitivity", model="mlp300", order=rotation)
    assert _iterative_order(args) == {"binarize_order": layer}


def test_cli_sensitivity_of_a_deep_network_names_its_layer_with_l():
    import argparse

    from bnnlib.cli import _iterative_order

    args = argparse.Namespace(kind="sensitivity", model="resnet20", order="12")
    assert _iterative_order(args) == {"binarize_order": "L12"}
    hp = RunConfig(model="resnet20", dataset="cifar10", hparams_set="sensitivity").resolve().hparams
    assert resolve_order(hp["binarize_order"], [f"l{i}" for i in range(20)]) == ["l0"]
