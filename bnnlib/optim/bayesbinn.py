"""BayesBiNN: the Bayesian learning rule for a mean-field Bernoulli posterior over +-1 weights.

Meng, Bachmann & Khan (ICML 2020), with the semantics of the authors' released optimizer
(team-approx-bayes/BayesBiNN, ``optimizers/BayesBiNN.py``). The posterior over each weight is
Bernoulli with natural parameter ``lamda`` (P(w=+1) = sigmoid(2 lamda)) and mean
``mu = tanh(lamda)``. One step draws relaxed weights ``w = tanh((lamda + delta) / temperature)``
with logistic noise ``delta``, writes them into the model, lets the closure compute the loss
gradient at ``w``, and moves ``lamda`` along the natural gradient::

    g_hat = N / S * sum_k (1 - w_k^2 + 1e-10) / temperature / (1 - mu^2 + 1e-10) * grad_k
    m     = beta * m + (1 - beta) * (g_hat + reweight * (lamda - lamda_prior))
    lamda = lamda - lr * m / (1 - beta^t)

Every tensor is kept as one flat vector over all parameters (the reference does the same), so a step
is a fixed number of whole-vector in-place kernels whatever the number of layers. The parameters are
re-pointed at slices of the flat weight vector, so writing the relaxed weights is a single kernel.
The arithmetic follows the reference's order of operations in the parameters' dtype, which is what
makes float32 saturate at temperature 1e-10 exactly as the paper's runs did: in float32
tanh(+-10) is exactly +-1, so the scale s is 1e10, lamda grows so large that the noise no longer
flips any weight, and the update behaves like a deterministic sign rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

STATE_KEY = "bayesbinn"
_STATE_TENSORS = ("lamda", "mu", "momentum", "prior_lamda")
_EPS = 1e-10  # the reference's constant in the scale s
EVAL_KINDS = ("mode", "mean")


class BayesBiNN(torch.optim.Optimizer):
    """BayesBiNN optimizer over binary weights (Meng et al., 2020), as the authors' code does it.

    Args:
        params: the binary weights (one parameter group); the optimizer owns their values.
        lr: learning rate alpha, read from the param group each step (schedulers act on it).
        train_set_size: N, the number of training examples the minibatch-mean loss stands for.
        temperature: tau of the Concrete relaxation (paper: 1e-10; 1e-8 for CIFAR-100).
        num_samples: S Monte-Carlo samples per step; S <= 0 is the deterministic BCVI-D variant.
        betas: gradient momentum beta with Adam-style bias correction (paper's image runs: 0).
        lamda_init, lamda_std: lamda starts at +-(lamda_init + sqrt(lamda_std) z), random sign.
        reweight: rho, the weight of the KL term.
        prior_lamda: flat prior natural parameters (continual learning); None means 0.
        stale_mu: True keeps the reference's mu = tanh(lamda before the update), so the
            scale s lags one step behind the sampling;
            False uses the paper's mu = tanh(lamda after the update).
        generator: source of all training noise (lamda's signs, the logistic noise); must live on
            the parameters' device. None uses torch's global generator.
    """

    consumes_closure = True

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        train_set_size: int,
        temperature: float = 1e-10,
        num_samples: int = 1,
        betas: float = 0.0,
        lamda_init: float = 10.0,
        lamda_std: float = 0.0,
        reweight: float = 1.0,
        prior_lamda: torch.Tensor | None = None,
        stale_mu: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        _check_hyperparameters(lr, train_set_size, temperature, num_samples, betas, reweight)
        if not lamda_std >= 0:
            raise ValueError(f"lamda_std must be >= 0, got {lamda_std!r}")
        defaults = dict(
            lr=lr,
            train_set_size=train_set_size,
            temperature=temperature,
            num_samples=num_samples,
            betas=betas,
            reweight=reweight,
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(
                f"BayesBiNN keeps one posterior over one parameter group, got {len(self.param_groups)}"
            )
        self._params: list[torch.Tensor] = self.param_groups[0]["params"]
        ref = self._params[0]
        for p in self._params:
            if p.dtype != ref.dtype or p.device != ref.device or not p.is_floating_point():
                raise TypeError(
                    "BayesBiNN needs floating-point parameters of one dtype on one device, got "
                    f"{ref.dtype} on {ref.device} and {p.dtype} on {p.device}"
                )
        if generator is not None and generator.device.type != ref.device.type:
            raise ValueError(
                f"generator lives on {generator.device} but the parameters on {ref.device}"
            )
        self.stale_mu = stale_mu
        self.generator = generator
        numel = sum(p.numel() for p in self._params)
        kw = {"dtype": ref.dtype, "device": ref.device}

        coin = torch.randint(0, 2, (numel,), generator=generator, **kw)
        lamda = torch.full((numel,), float(lamda_init), **kw)
        if lamda_std > 0:
            lamda.add_(math.sqrt(lamda_std) * torch.randn(numel, generator=generator, **kw))
        lamda.mul_(coin.mul_(2).sub_(1))
        if prior_lamda is None:
            prior = torch.zeros(numel, **kw)
        else:
            prior = _flat_like(prior_lamda, numel, "prior_lamda").to(**kw).clone()
        self.state[STATE_KEY] = {
            "step": 0,
            "lamda": lamda,
            "mu": torch.tanh(lamda),
            "momentum": torch.zeros(numel, **kw),
            "prior_lamda": prior,
        }
        self._build_buffers()

    def _build_buffers(self) -> None:
        """What a step needs besides the state, all derived from the parameters and the state:
        rebuilt after a deepcopy or an unpickling, which keep only defaults, state and groups."""
        self._params = self.param_groups[0]["params"]
        ref = self._params[0]
        numel = sum(p.numel() for p in self._params)
        kw = {"dtype": ref.dtype, "device": ref.device}
        self._prior_is_zero = not bool(self.state[STATE_KEY]["prior_lamda"].any())
        self._one = torch.ones((), **kw)
        # Work buffers, reused every step: the flat weights the parameters view, the noise (then the
        # gathered gradient), the scale s, its mu-dependent denominator, the Monte-Carlo sum (if S > 1).
        self._weights = torch.cat([p.detach().reshape(-1) for p in self._params])
        self._buf = torch.empty(numel, **kw)
        self._scale = torch.empty(numel, **kw)
        self._den = torch.empty(numel, **kw)
        self._sum: torch.Tensor | None = None
        self._bind_parameters()

    def __getstate__(self) -> dict[str, Any]:
        # torch keeps defaults, state and param_groups only; the options persist too (the
        # generator with its position in the noise stream), the work buffers are rebuilt.
        return {**super().__getstate__(), "stale_mu": self.stale_mu, "generator": self.generator}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # also called by load_state_dict, with state and groups only
        self.__dict__.setdefault("stale_mu", True)
        self.__dict__.setdefault("generator", None)
        if "_weights" not in self.__dict__:
            self._build_buffers()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "_weights" in self.__dict__:  # constructed
            raise ValueError("BayesBiNN's flat posterior is fixed at construction; build a new one")
        super().add_param_group(param_group)

    @property
    def lamda(self) -> torch.Tensor:
        """Natural parameters, a flat vector in parameter order (live: edits change the posterior)."""
        return self.state[STATE_KEY]["lamda"]

    @property
    def mu(self) -> torch.Tensor:
        """Stored mean parameters (with ``stale_mu`` the tanh of the previous step's lamda)."""
        return self.state[STATE_KEY]["mu"]

    @property
    def prior_lamda(self) -> torch.Tensor:
        return self.state[STATE_KEY]["prior_lamda"]

    def set_prior_from_current(self) -> None:
        """Make the current posterior the prior of the next task (Meng et al.'s continual learning).

        lamda itself is kept, as are the momentum and the step count, as the reference does."""
        self.prior_lamda.copy_(self.lamda)
        self._prior_is_zero = not bool(self.prior_lamda.any())

    def reset_prior(self) -> None:
        """Back to the symmetric Bernoulli prior (lamda_prior = 0)."""
        self.prior_lamda.zero_()
        self._prior_is_zero = True

    def _bind_parameters(self) -> None:
        """Point every parameter at its slice of the flat weight vector (as vector_to_parameters
        does in the reference), so one kernel writes all weights. Re-done at each write (a few
        attribute assignments) because ``module.to()`` may have replaced a parameter's data."""
        offset = 0
        for p in self._params:
            n = p.numel()
            p.data = self._weights[offset : offset + n].view_as(p)
            offset += n

    def _mc_sum(self) -> torch.Tensor:
        if self._sum is None:
            self._sum = torch.empty_like(self._weights)
        return self._sum

    def _fill_uniform(self, out: torch.Tensor) -> torch.Tensor:
        """U[0, 1) noise (torch.rand semantics) from the optimizer's generator."""
        return out.uniform_(0.0, 1.0, generator=self.generator)

    def _gather_grad(self, out: torch.Tensor) -> torch.Tensor:
        grads = [p.grad for p in self._params]
        if all(g is None for g in grads):
            raise RuntimeError(
                "BayesBiNN's closure must zero the gradients, run forward, call backward() and"
                " return the loss; no parameter received a gradient"
            )
        flat = [
            torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(-1)
            for p, g in zip(self._params, grads, strict=True)
        ]
        return torch.cat(flat, out=out)

    def _run_closure(self, closure: Callable[[], Any]) -> torch.Tensor:
        self._bind_parameters()
        with torch.enable_grad():
            loss = closure()
        return torch.as_tensor(loss).detach()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> torch.Tensor:  # type: ignore[override]
        """One BayesBiNN update. ``closure`` zeroes the gradients, runs the forward pass, computes
        the minibatch-mean loss, calls ``backward()`` and returns the loss; it is called once per
        Monte-Carlo sample. Returns the mean loss over the samples."""
        if closure is None:
            raise RuntimeError(
                "BayesBiNN.step needs a closure (it re-evaluates the loss per sample)"
            )
        group = self.param_groups[0]
        _check_hyperparameters(
            group["lr"],
            group["train_set_size"],
            group["temperature"],
            group["num_samples"],
            group["betas"],
            group["reweight"],
        )
        st = self.state[STATE_KEY]
        st["step"] += 1
        lamda, mu, momentum = st["lamda"], st["mu"], st["momentum"]
        tau = group["temperature"]
        samples = int(group["num_samples"])
        n_train = group["train_set_size"]
        beta = group["betas"]
        w, buf, scale = self._weights, self._buf, self._scale

        losses = []
        if samples <= 0:
            torch.tanh(lamda, out=w)
            losses.append(self._run_closure(closure))
            g_hat = torch.mul(self._gather_grad(buf), n_train, out=scale)
        else:
            # The reference's order of operations throughout: 1 - mu*mu cancels catastrophically
            # near |mu| = 1, so a fused multiply-add (addcmul) would change the printed vectors.
            den = torch.mul(mu, mu, out=self._den)
            torch.sub(self._one, den, out=den).add_(_EPS)
            for k in range(samples):
                u = self._fill_uniform(buf)
                torch.logit(u, out=u)  # = log(u / (1 - u)); u = 0 gives -inf, so w = -1, not NaN
                torch.add(lamda, u, alpha=0.5, out=u).div_(tau)
                torch.tanh(u, out=w)
                losses.append(self._run_closure(closure))
                g = self._gather_grad(buf)
                s = torch.mul(w, w, out=scale)
                torch.sub(self._one, s, out=s).add_(_EPS).div_(tau).div_(den).mul_(g)
                if samples == 1:
                    g_hat = s
                elif k == 0:
                    g_hat = self._mc_sum().copy_(s)
                else:
                    g_hat.add_(s)
            g_hat.mul_(n_train / samples)

        # m = beta m + (1 - beta)(g_hat + rho (lamda - lamda_prior)); the paper's beta = 0, rho = 1,
        # lamda_prior = 0 skip only terms that are exact identities.
        kl = lamda if self._prior_is_zero else torch.sub(lamda, st["prior_lamda"], out=buf)
        if group["reweight"] != 1:
            kl = torch.mul(kl, group["reweight"], out=buf)
        if beta == 0:
            torch.add(g_hat, kl, out=momentum)
        else:
            g_hat.add_(kl).mul_(1 - beta)
            momentum.mul_(beta).add_(g_hat)
        step_size = torch.mul(momentum, group["lr"], out=scale)
        correction = 1 - beta ** st["step"]
        if correction != 1:
            step_size.div_(correction)
        if self.stale_mu:
            torch.tanh(lamda, out=mu)
            lamda.sub_(step_size)
        else:
            lamda.sub_(step_size)
            torch.tanh(lamda, out=mu)
        return torch.stack(losses).mean()

    @torch.no_grad()
    def eval_weight_samples(
        self, kind: str = "mode", num: int = 1, generator: torch.Generator | None = None
    ) -> Iterator[None]:
        """Write evaluation weights into the model, one network per iteration.

        ``"mode"``: one network with sign(mu), sign(0) := -1 as the reference (``num`` ignored).
        ``"mean"``: ``num`` networks with w = 2b - 1, b ~ Bernoulli(sigmoid(2 lamda)), drawn from
        ``generator`` (None: torch's global generator), so evaluation never consumes training
        noise. The weights stay written afterwards; the next step overwrites them."""
        if kind not in EVAL_KINDS:
            raise ValueError(f"unknown eval kind {kind!r}; choose one of {', '.join(EVAL_KINDS)}")
        w = self._weights
        if kind == "mode":
            torch.where(self.mu > 0, self._one, -self._one, out=w)
            self._bind_parameters()
            yield
            return
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(f"eval kind 'mean' needs num >= 1 sampled networks, got {num!r}")
        prob = torch.mul(self.lamda, 2, out=self._buf).sigmoid_()
        for _ in range(num):
            torch.bernoulli(prob, generator=generator, out=w).mul_(2).sub_(1)
            self._bind_parameters()
            yield

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, with the generator's state (the position in the noise stream) in
        ``state["bayesbinn"]["generator"]`` when the optimizer has its own generator, so that a
        twin that loads it draws the same noise. Post hooks see it already added."""
        handle = self.register_state_dict_post_hook(_with_generator_state, prepend=True)
        try:
            return super().state_dict()
        finally:
            handle.remove()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state dict, copying the flat state into this optimizer's own buffers (on its
        device and dtype) so the loaded dict is never aliased, and the generator's state if it
        holds one. A dict for other parameters is refused and changes nothing."""
        old_state, old_groups = self.state, self.param_groups
        own = old_state[STATE_KEY]
        super().load_state_dict(state_dict)
        loaded = self.state[STATE_KEY]
        for name in _STATE_TENSORS:
            if name not in loaded or loaded[name].shape != own[name].shape:
                got = tuple(loaded[name].shape) if name in loaded else "nothing"
                self.state, self.param_groups = old_state, old_groups
                raise ValueError(
                    f"state {name!r} has shape {got}, this optimizer's parameters need"
                    f" {tuple(own[name].shape)}"
                )
        for name in _STATE_TENSORS:
            own[name].copy_(loaded[name])
        own["step"] = int(loaded["step"])
        generator_state = loaded.get("generator")
        if generator_state is not None and self.generator is not None:
            self.generator.set_state(generator_state.to("cpu", torch.uint8))
        self.state[STATE_KEY] = own
        self._prior_is_zero = not bool(own["prior_lamda"].any())


def _with_generator_state(opt: BayesBiNN, state_dict: dict[str, Any]) -> dict[str, Any] | None:
    if opt.generator is None:
        return None
    state = dict(state_dict["state"])  # the values are the live state: copy, never write into it
    state[STATE_KEY] = {**state[STATE_KEY], "generator": opt.generator.get_state()}
    return {**state_dict, "state": state}


def _flat_like(t: torch.Tensor, numel: int, name: str) -> torch.Tensor:
    if not torch.is_tensor(t) or t.numel() != numel:
        raise ValueError(f"{name} must be a tensor with {numel} entries (one per weight)")
    return t.reshape(-1)


def _check_hyperparameters(
    lr: float,
    train_set_size: int,
    temperature: float,
    num_samples: int,
    betas: float,
    reweight: float,
) -> None:
    if not lr >= 0:
        raise ValueError(f"lr must be >= 0, got {lr!r}")
    if not train_set_size >= 1:
        raise ValueError(f"train_set_size must be >= 1, got {train_set_size!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise TypeError(f"num_samples must be an int, got {num_samples!r}")
    if not 0.0 <= betas < 1.0:
        raise ValueError(f"betas must be in [0, 1), got {betas!r}")
    if not reweight >= 0:
        raise ValueError(f"reweight must be >= 0, got {reweight!r}")
