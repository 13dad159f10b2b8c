"""A hand-written ConvGRU's weights as a ConvGRUCell's (docs/porting.md has a recipe per project).

Most public ConvGRUs (RAFT, RAFT-Stereo, DROID-SLAM, MVSNet, ...) run each gate's convolution over
the concatenation of the input and the state, ``[x, h]`` (``order="xh"``) or ``[h, x]``
(``order="hx"``), and the candidate's over ``[x, r ⊙ h]`` (in the same order)::

    r  = σ(N_r(W_r * [x, h] + b_r))            z = σ(N_z(W_z * [x, h] + b_z))
    q  = tanh(N_n(W_n * [x, r ⊙ h] + b_n))
    h' = z ⊙ h + (1 - z) ⊙ q                   z_keeps="h"         (MVSNet, R-MVSNet, nn.GRU)
    h' = (1 - z) ⊙ h + z ⊙ q                   z_keeps="candidate" (RAFT, RAFT-Stereo, DROID-SLAM,
                                                                    jacobkimmel's, jhhuang96's)

with ``N_*`` a GroupNorm or the identity. That is ``ConvGRUCell`` with ``reset="before"`` (the reset
multiplies h before the convolution) and three rules, which the functions here apply:

1. ``W * [x, h]`` is ``W[:, x's channels] * x + W[:, h's channels] * h``: the weights split into
   ``conv_x`` and ``conv_h`` (gates stacked r, z, n); the bias goes to ``conv_x`` (``conv_h``'s is
   zero, or holds it when the cell has no input).
2. ``z_keeps="candidate"``: convgru's z, the one that keeps h, is 1 - the project's, and
   1 - σ(a) = σ(-a), so the z pre-activation is negated: its weights and bias, or, behind a
   GroupNorm, the norm's affine weight and bias (GN(a) = γ â + β with â the normalised a, and
   GN(-a) = -γ â + β is not -GN(a): negating the convolution there would be wrong).
3. A context added to the pre-activations (RAFT-Stereo's cz, cr, cq; DROID-SLAM's global term) is
   ``forward``'s ``context``, stacked r, z, n with z negated likewise: ``gate_context``.

Weights are given as modules (``nn.Conv2d``, ``nn.GroupNorm``) or as ``(weight, bias)`` pairs of
tensors (from a state dict or another framework; bias None when absent), in nn.Conv2d's layout
(out_channels, in_channels, kh, kw).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ._checks import DILATION, EPS, POSITIVE, OptionError, check, check_choice

__all__ = ["concat_state_dict", "load_concat_weights", "gate_context"]

ORDERS = ("xh", "hx")
Z_KEEPS = ("h", "candidate")
GATE_ORDERS = ("rz", "zr")
NORM_NAMES = ("norm_r", "norm_z", "norm_gates", "norm_n")


def concat_state_dict(*, order: str, z_keeps: str, conv_n, conv_r=None, conv_z=None, conv_gates=None,
                      gate_order: str | None = None, norm_r=None, norm_z=None, norm_gates=None,
                      norm_n=None) -> dict[str, Tensor]:
    """The state dict of a ``reset="before"`` ConvGRUCell that computes what a hand-written
    ConvGRU does (the module's equations), from that cell's weights.

    Args:
        order: "xh" if the project concatenates ``[x, h]`` (and ``[x, r ⊙ h]``), "hx" for ``[h, x]``.
        z_keeps: "h" if its update is ``h' = z ⊙ h + (1 - z) ⊙ q``, "candidate" if it is
            ``h' = (1 - z) ⊙ h + z ⊙ q``.
        conv_n: the candidate's convolution over ``[x, r ⊙ h]``: C_h output channels.
        conv_r, conv_z: the reset and update gates' convolutions over ``[x, h]`` (C_h outputs each);
            or, instead, ``conv_gates``: one convolution of 2 * C_h outputs, both gates stacked in
            ``gate_order`` ("rz" or "zr").
        norm_r, norm_z, norm_n: GroupNorms of the gates' pre-activations (C_h channels each), or
            ``norm_gates``: one over the stacked gates (2 * C_h channels, in ``gate_order``), with
            ``norm_n``. All three gates have a norm, or none.

    Returns:
        {"conv_x.weight", "conv_x.bias", "conv_h.weight", "conv_h.bias", "norm_rz.weight", ...}:
        tensors computed from the given ones by differentiable ops (slices, concatenation,
        negation), so gradients flow back to the project's weights (no conv_x entries when the
        convolutions take h alone, no biases when none has one, no norms without norms). Load them
        with ``cell.load_state_dict``, or use ``load_concat_weights``, which also checks the cell.

    Raises:
        ValueError: naming the argument, for a value of another kind, shapes that do not fit
            together, or a missing gate or norm.
    """
    check_choice("order", order, ORDERS)
    check_choice("z_keeps", z_keeps, Z_KEEPS)
    (w_r, b_r), (w_z, b_z), (w_n, b_n) = _gate_convs(conv_r, conv_z, conv_gates, gate_order, conv_n)
    c, inputs = w_n.shape[0], w_n.shape[1] - w_n.shape[0]
    norms = _gate_norms(norm_r, norm_z, norm_gates, norm_n, gate_order, c)
    negate = z_keeps == "candidate"
    if negate and norms is None:
        w_z, b_z = -w_z, None if b_z is None else -b_z
    weight = torch.cat([w_r, w_z, w_n])
    w_x, w_h = (weight[:, :inputs], weight[:, inputs:]) if order == "xh" else (weight[:, c:], weight[:, :c])
    state = {"conv_x.weight": w_x} if inputs else {}
    state["conv_h.weight"] = w_h
    biases = (b_r, b_z, b_n)
    if any(b is not None for b in biases):
        bias = torch.cat([w.new_zeros(c) if b is None else b for b, w in zip(biases, (w_r, w_z, w_n))])
        if inputs:
            state["conv_x.bias"], state["conv_h.bias"] = bias, torch.zeros_like(bias)
        else:
            state["conv_h.bias"] = bias
    if norms is not None:
        (g_r, beta_r), (g_z, beta_z), (g_n, beta_n) = (_affine(norm, w_n) for norm in norms)
        if negate:
            g_z, beta_z = -g_z, -beta_z
        state.update({"norm_rz.weight": torch.cat([g_r, g_z]), "norm_rz.bias": torch.cat([beta_r, beta_z]),
                      "norm_n.weight": g_n, "norm_n.bias": beta_n})
    return state


def load_concat_weights(cell: nn.Module, *, order: str, z_keeps: str, conv_n, conv_r=None, conv_z=None,
                        conv_gates=None, gate_order: str | None = None, norm_r=None, norm_z=None,
                        norm_gates=None, norm_n=None) -> None:
    """Copy a hand-written ConvGRU's weights into ``cell`` (a ConvGRUCell), which then computes what
    that cell does: the arguments as in ``concat_state_dict``.

    Raises:
        ValueError: as ``concat_state_dict``, and naming every option in which ``cell`` differs
            from what the weights need: ``reset="before"``, the sizes, kernel, dilation, norm, and the
            GroupNorms' groups and eps where modules give them (pairs do not: check those yourself),
            a bias wherever the weights have one (a cell with biases takes weights without: zeros).
    """
    weights = dict(conv_n=conv_n, conv_r=conv_r, conv_z=conv_z, conv_gates=conv_gates, gate_order=gate_order,
                   norm_r=norm_r, norm_z=norm_z, norm_gates=norm_gates, norm_n=norm_n)
    state = concat_state_dict(order=order, z_keeps=z_keeps, **weights)
    need = _read(**weights)
    need["reset"] = ("before", "a convolution over [x, r ⊙ h]")
    differ = [f"{name}={value!r} ({why}), the cell has {getattr(cell, name)!r}"
              for name, (value, why) in need.items()
              if value is not None and getattr(cell, name) != value and not (name == "bias" and not value)]
    if differ:
        raise OptionError("cell", "the weights need " + "; ".join(differ) + ". ConvGRUCell.from_concat builds "
                          "the cell that fits")
    for key, value in cell.state_dict().items():
        if key.endswith(".bias"):
            state.setdefault(key, torch.zeros_like(value))
    cell.load_state_dict(state)


def concat_options(*, conv_n, conv_r=None, conv_z=None, conv_gates=None, gate_order=None, norm_r=None,
                   norm_z=None, norm_gates=None, norm_n=None, num_groups=None, norm_eps=None,
                   dilation=None) -> dict:
    """ConvGRUCell's arguments for the cell these weights fit (``ConvGRUCell.from_concat``):
    ``num_groups`` and ``norm_eps`` as the GroupNorm modules say (required with GroupNorms given as
    pairs), ``dilation`` as the nn.Conv2d modules say (1 by default for pairs); a value given
    here must agree with the modules'."""
    found = _read(conv_n=conv_n, conv_r=conv_r, conv_z=conv_z, conv_gates=conv_gates, gate_order=gate_order,
                  norm_r=norm_r, norm_z=norm_z, norm_gates=norm_gates, norm_n=norm_n)
    given = {"num_groups": None if num_groups is None else check("num_groups", num_groups, POSITIVE),
             "norm_eps": None if norm_eps is None else check("norm_eps", norm_eps, EPS),
             "dilation": None if dilation is None else check("dilation", dilation, DILATION)}
    options = {name: value for name, (value, _) in found.items()}
    for name, value in given.items():
        known, why = found[name]
        if value is not None and known is not None and value != known:
            raise OptionError(name, f"expected {known!r} as {why} says, or nothing; got {value!r}")
        if known is None:
            if value is None and (name == "dilation" or found["norm"][0] is None):
                value = 1 if name == "dilation" else None
            elif value is None:
                raise OptionError(name, "expected a value: the GroupNorms are (weight, bias) pairs, which do not "
                                  f"say it ({_PAIR_NORM_HINT[name]}); got None")
            options[name] = value
    if options["norm"] is None:
        del options["num_groups"], options["norm_eps"]
    weight = _conv("conv_n", conv_n)[0]
    return {**options, "reset": "before", "device": weight.device, "dtype": weight.dtype}


_PAIR_NORM_HINT = {"num_groups": "nn.GroupNorm's num_groups per gate", "norm_eps": "nn.GroupNorm's eps; "
                   "TensorFlow's layer_norm is 1e-12"}


def gate_context(r: Tensor, z: Tensor, n: Tensor, *, z_keeps: str) -> Tensor:
    """A hand-written ConvGRU's per-gate context terms (added to its r, z and candidate
    pre-activations, e.g. RAFT-Stereo's cr, cz, cq) as ``ConvGRUCell.forward``'s ``context``:
    (B, 3C, H, W) stacked r, z, n, z negated when ``z_keeps="candidate"`` (the module's rule 2).
    r, z, n: (B, C, H, W) each, or broadcastable alike, such as (B, C, 1, 1)."""
    check_choice("z_keeps", z_keeps, Z_KEEPS)
    return torch.cat([r, -z if z_keeps == "candidate" else z, n], 1)


def _conv(name: str, conv) -> tuple[Tensor, Tensor | None]:
    """(weight, bias) of an nn.Conv2d with 'same' padding, or of a (weight, bias) pair."""
    if isinstance(conv, nn.Conv2d):
        same = tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
        if conv.stride != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros" or (
                conv.padding != "same" and tuple(conv.padding) != same):
            raise OptionError(name, "expected a convolution of stride 1, groups 1 and zero 'same' padding "
                              f"({same}), got {conv}")
        return conv.weight, conv.bias
    if (isinstance(conv, (tuple, list)) and len(conv) == 2 and isinstance(conv[0], Tensor) and conv[0].dim() == 4
            and (conv[1] is None or isinstance(conv[1], Tensor) and conv[1].shape == conv[0].shape[:1])):
        return conv[0], conv[1]
    raise OptionError(name, "expected an nn.Conv2d or a (weight, bias) pair, weight (out_channels, "
                      f"in_channels, kh, kw) and bias (out_channels,) or None; got {_shown(conv)}")


def _gate_convs(conv_r, conv_z, conv_gates, gate_order, conv_n) -> list[tuple[Tensor, Tensor | None]]:
    """[(weight, bias)] of the r, z and n convolutions, checked to fit together."""
    w_n, b_n = _conv("conv_n", conv_n)
    c, cin = w_n.shape[:2]
    if cin < c:
        raise OptionError("conv_n", f"expected in_channels >= out_channels (x's and h's channels, h's = "
                          f"out_channels), got in_channels={cin}, out_channels={c}")
    if conv_gates is not None:
        if conv_r is not None or conv_z is not None:
            raise OptionError("conv_gates", "expected either conv_gates or conv_r and conv_z, got both")
        check_choice("gate_order", gate_order, GATE_ORDERS)
        w, b = _conv("conv_gates", conv_gates)
        _check_shape("conv_gates", w, (2 * c, cin, *w_n.shape[2:]), "2 * C_h, the r and z gates stacked")
        halves = list(zip(w.chunk(2), [None, None] if b is None else b.chunk(2)))
        gates = halves if gate_order == "rz" else halves[::-1]
    elif conv_r is None or conv_z is None:
        missing = [name for name, conv in (("conv_r", conv_r), ("conv_z", conv_z)) if conv is None]
        raise OptionError(missing[0], "expected the gate's convolution: give conv_r and conv_z, or conv_gates "
                          "with gate_order; got None")
    else:
        gates = [_conv("conv_r", conv_r), _conv("conv_z", conv_z)]
        for name, (w, _) in zip(("conv_r", "conv_z"), gates):
            _check_shape(name, w, (c, cin, *w_n.shape[2:]), "C_h")
    return [*gates, (w_n, b_n)]


def _check_shape(name: str, weight: Tensor, expected: tuple, what: str) -> None:
    if tuple(weight.shape) != expected:
        raise OptionError(name, f"expected a weight of shape {expected} (out_channels = {what}; in_channels and "
                          f"kernel as conv_n's), got {tuple(weight.shape)}")


def _gate_norms(norm_r, norm_z, norm_gates, norm_n, gate_order, c: int) -> list | None:
    """[(weight, bias)] of the r, z and n GroupNorms (entries None where not affine), or None."""
    given = {name: norm for name, norm in zip(NORM_NAMES, (norm_r, norm_z, norm_gates, norm_n)) if norm is not None}
    if not given:
        return None
    if norm_gates is not None and (norm_r is not None or norm_z is not None):
        raise OptionError("norm_gates", "expected either norm_gates or norm_r and norm_z, got both")
    if norm_n is None or (norm_gates is None and (norm_r is None or norm_z is None)):
        missing = [name for name in ("norm_r", "norm_z", "norm_n") if name not in given and not (
            name != "norm_n" and norm_gates is not None)]
        raise OptionError(missing[0], f"expected a norm: ConvGRUCell normalises all three gates or none, and "
                          f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} given; got None")
    if norm_gates is not None:
        check_choice("gate_order", gate_order, GATE_ORDERS)
        w, b = _affine_pair("norm_gates", norm_gates, 2 * c)
        halves = list(zip(*(([None, None] if t is None else t.chunk(2)) for t in (w, b))))
        gates = halves if gate_order == "rz" else halves[::-1]
    else:
        gates = [_affine_pair("norm_r", norm_r, c), _affine_pair("norm_z", norm_z, c)]
    return [*gates, _affine_pair("norm_n", norm_n, c)]


def _affine_pair(name: str, norm, channels: int) -> tuple[Tensor | None, Tensor | None]:
    """(weight, bias) of an nn.GroupNorm of `channels` channels or of a pair (None where absent)."""
    if isinstance(norm, nn.GroupNorm):
        if norm.num_channels != channels:
            raise OptionError(name, f"expected a GroupNorm of {channels} channels, got {norm}")
        return norm.weight, norm.bias
    if isinstance(norm, (tuple, list)) and len(norm) == 2 and all(
            t is None or isinstance(t, Tensor) and t.shape == (channels,) for t in norm):
        return norm[0], norm[1]
    raise OptionError(name, f"expected an nn.GroupNorm of {channels} channels or a (weight, bias) pair of "
                      f"({channels},) tensors or None; got {_shown(norm)}")


def _affine(norm: tuple, like: Tensor) -> tuple[Tensor, Tensor]:
    """A norm's (weight, bias) with ones and zeros where it has none."""
    weight, bias = norm
    c = like.shape[0] if weight is None and bias is None else (weight if weight is not None else bias).shape[0]
    return (like.new_ones(c) if weight is None else weight, like.new_zeros(c) if bias is None else bias)


def _read(*, conv_n, conv_r, conv_z, conv_gates, gate_order, norm_r, norm_z, norm_gates, norm_n) -> dict:
    """{ConvGRUCell option: (value or None where the weights do not say it, where it comes from)}."""
    _gate_norms(norm_r, norm_z, norm_gates, norm_n, gate_order, _gate_convs(conv_r, conv_z, conv_gates, gate_order,
                                                                            conv_n)[2][0].shape[0])  # shapes
    convs = {name: conv for name, conv in (("conv_n", conv_n), ("conv_r", conv_r), ("conv_z", conv_z),
                                           ("conv_gates", conv_gates)) if conv is not None}
    pairs = {name: _conv(name, conv) for name, conv in convs.items()}
    weight = pairs["conv_n"][0]
    c, cin, kh, kw = weight.shape
    if not kh % 2 or not kw % 2:
        raise OptionError("conv_n", f"expected an odd kernel size, for 'same' padding; got ({kh}, {kw})")
    modules = [conv for conv in convs.values() if isinstance(conv, nn.Conv2d)]
    dilations = {conv.dilation for conv in modules}
    if len(dilations) > 1:
        raise OptionError("conv_n", f"expected one dilation in every convolution, got {sorted(dilations)}")
    dilation = None if not dilations else check("dilation", dilations.pop(), DILATION)
    norms = {name: norm for name, norm in zip(NORM_NAMES, (norm_r, norm_z, norm_gates, norm_n)) if norm is not None}
    first: dict[str, tuple] = {}  # num_groups, norm_eps: (value, name of the norm that gave it)
    for name, norm in norms.items():
        if isinstance(norm, nn.GroupNorm):
            per_gate, odd = divmod(norm.num_groups, 2) if name == "norm_gates" else (norm.num_groups, 0)
            if odd:
                raise OptionError(name, f"expected an even num_groups (groups within one gate), got {norm}")
            for option, value in (("num_groups", per_gate), ("norm_eps", norm.eps)):
                known, where = first.setdefault(option, (value, name))
                if value != known:
                    raise OptionError(name, f"expected {option} {known!r} per gate as {where} has (ConvGRUCell has "
                                      f"one for every gate), got {norm}")
    kernel = kh if kh == kw else (kh, kw)
    source = "conv_n's weight"
    return {"input_size": (cin - c, source), "hidden_size": (c, source), "kernel_size": (kernel, source),
            "dilation": (dilation, "the convolutions"),
            "bias": (any(b is not None for _, b in pairs.values()), "the convolutions"),
            "norm": ("group" if norms else None, "the norms given"),
            "num_groups": (first.get("num_groups", (None,))[0], "the GroupNorms"),
            "norm_eps": (first.get("norm_eps", (None,))[0], "the GroupNorms")}


def _shown(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of [{', '.join(_shown(v) for v in value)}]"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__}"
    return "None" if value is None else type(value).__name__
