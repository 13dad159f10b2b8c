"""
Porting a hand-written ConvGRU
==============================

Most ConvGRUs in the wild are a few lines inside a larger model. RAFT's (Teed & Deng, ECCV 2020,
``core/update.py``) convolves the concatenation ``[h, x]`` for each gate, and its update gate z
keeps the candidate: ``h' = (1 - z) h + z q``. ``ConvGRUCell.from_concat`` builds the
:class:`convgru.ConvGRUCell` that computes the same function from the same weights (see
:doc:`/porting` for the rules and eight recipes); here we write RAFT's cell, port it, and compare
the two over a sequence of steps.
"""

# %%
# RAFT's cell, as its paper's code writes it
# ------------------------------------------
import matplotlib.pyplot as plt
import torch
from torch import nn

from convgru import ConvGRUCell
from convgru.porting import load_concat_weights


class RaftConvGRU(nn.Module):
    def __init__(self, hidden_dim=16, input_dim=24):
        super().__init__()
        both = hidden_dim + input_dim
        self.convz = nn.Conv2d(both, hidden_dim, 3, padding=1)
        self.convr = nn.Conv2d(both, hidden_dim, 3, padding=1)
        self.convq = nn.Conv2d(both, hidden_dim, 3, padding=1)

    def forward(self, h, x):
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


torch.manual_seed(0)
raft = RaftConvGRU()

# %%
# The port
# --------
# ``order="hx"``: RAFT concatenates ``[h, x]``; ``z_keeps="candidate"``: its z weighs the candidate
# (convgru's, as ``torch.nn.GRU``'s, weighs h, so the port negates z's pre-activation). The cell is
# ``reset="before"``: RAFT's candidate convolves ``r * h``.
cell = ConvGRUCell.from_concat(order="hx", z_keeps="candidate",
                               conv_r=raft.convr, conv_z=raft.convz,
                               conv_n=raft.convq)
print(cell)

# %%
# Into a cell you built yourself, ``load_concat_weights`` copies the weights, and names every option
# in which the cell does not fit them: here the default ``reset="after"`` (``torch.nn.GRU``'s
# candidate, another function).
try:
    load_concat_weights(ConvGRUCell(24, 16), order="hx",
                        z_keeps="candidate", conv_r=raft.convr,
                        conv_z=raft.convz, conv_n=raft.convq)
except ValueError as error:
    print(error)

# %%
# The same outputs
# ----------------
# Both run 12 steps on the same inputs, each from its own previous state: RAFT's ``gru(h, x)``,
# convgru's ``cell(x, h)``. In float32 they agree to rounding (the convolutions are split, so sums run
# in another order); in float64 to about 1e-15.
def max_differences(dtype, steps=12):
    raft_d, cell_d = raft.to(dtype), cell.to(dtype)
    torch.manual_seed(1)
    xs = torch.randn(steps, 2, 24, 32, 48, dtype=dtype)
    h_raft = h_cell = torch.zeros(2, 16, 32, 48, dtype=dtype)
    differences = []
    with torch.no_grad():
        for x in xs:
            h_raft, h_cell = raft_d(h_raft, x), cell_d(x, h_cell)
            differences.append((h_raft - h_cell).abs().max().item())
    return differences, h_raft, h_cell


float32, h_raft, h_cell = max_differences(torch.float32)
float64, _, _ = max_differences(torch.float64)
print(f"max |RAFT - convgru| over 12 steps: "
      f"float32 {max(float32):.1e}, float64 {max(float64):.1e}")

fig, (ax, *maps) = plt.subplots(1, 4, figsize=(12, 2.8),
                                width_ratios=[1.3, 1, 1, 1],
                                layout="constrained")
ax.semilogy(range(1, 13), float32, "o-", label="float32")
ax.semilogy(range(1, 13), float64, "s-", label="float64")
ax.set(xlabel="step", ylabel="max |RAFT - convgru|",
       title="state after each step", xticks=range(2, 13, 2))
ax.legend()
panels = {"RAFT's h, channel 0": h_raft[0, 0],
          "convgru's h": h_cell[0, 0],
          "RAFT - convgru (float32)": h_raft[0, 0] - h_cell[0, 0]}
for axis, (title, image) in zip(maps, panels.items()):
    edge = image.abs().max()
    shown = axis.imshow(image.numpy(), cmap="RdBu_r", vmin=-edge,
                        vmax=edge)
    axis.set(title=title, xticks=[], yticks=[])
    fig.colorbar(shown, ax=axis, shrink=0.8)
plt.show()
