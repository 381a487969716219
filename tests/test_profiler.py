"""Parameter and MAC accounting (reprolib.utils.macs, reprolib.experiments.costs, the profile command) against
hand counts and docs/decisions/vld.md#parameter-and-flop-accounting."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reprolib.config import BackboneConfig
from reprolib.experiments.costs import count_parameters, paper_references
from reprolib.experiments.profile_cli import main
from reprolib.models import TINYCLIP_ARCH, create_clip_visual
from reprolib.utils.macs import count_flops, count_macs, infer_frames

# docs/decisions/vld.md#baseline-parameters and docs/decisions/vld.md#flop-convention: CLIP ViT-B/16 visual encoder at 288x144 (163 tokens, D = 768).
VIT_B16_PARAMS = 86_166_528
VIT_B16_PAPER_MACS = 95_551_488 + 163 * 7_077_888 * 12 + 26 * 163 * 768 * 5  # conv + linears + LNs
VIT_B16_ATTENTION_MACS = 12 * 2 * 163 * 163 * 768  # q.k^T and attn.v in 12 blocks
VIT_B16_PROJ_MACS = 768 * 512  # [CLS] @ proj


@pytest.fixture(scope="module")
def vit_b16() -> nn.Module:
    """Random-init CLIP ViT-B/16 visual encoder at 288x144 (built once for the module)."""
    torch.manual_seed(0)
    return create_clip_visual(BackboneConfig(arch="ViT-B-16-quickgelu", pretrained="none"), (288, 144))


@pytest.fixture(scope="module")
def vit_b16_counts(vit_b16):
    return count_macs(vit_b16, (torch.randn(1, 3, 288, 144),))


def test_vit_b16_parameters_match_vld(vit_b16):
    table = count_parameters(vit_b16, depth=2)
    assert table["params"].sum() == VIT_B16_PARAMS == sum(p.numel() for p in vit_b16.parameters())
    assert table.loc["vit.transformer", "params"] == 12 * 7_087_872
    assert table.loc["vit.positional_embedding", "params"] == 163 * 768
    assert table.loc["vit.conv1", "type"] == "Conv2d"


def test_vit_b16_paper_flops_match_vld(vit_b16_counts):
    assert VIT_B16_PAPER_MACS == 13_956_174_336  # the arithmetic of docs/decisions/vld.md#flop-convention
    assert vit_b16_counts.total("paper") == VIT_B16_PAPER_MACS
    assert round(vit_b16_counts.total("paper") / 1e9, 2) == 13.96
    kinds = vit_b16_counts.by_kind()
    assert kinds["conv"] == 95_551_488
    assert kinds["layernorm"] == 26 * 163 * 768 * 5
    assert kinds["attention"] == VIT_B16_ATTENTION_MACS
    assert kinds["param_matmul"] == VIT_B16_PROJ_MACS


def test_vit_b16_full_flops_add_attention_products(vit_b16_counts):
    full = vit_b16_counts.total("full")
    assert full == VIT_B16_PAPER_MACS + VIT_B16_ATTENTION_MACS + VIT_B16_PROJ_MACS
    assert full > vit_b16_counts.total("paper")
    assert round(full / 1e9, 2) == 14.45  # docs/decisions/vld.md#flop-convention, "if the attention products were counted"


def test_paper_references_agree_at_printed_precision(vit_b16, vit_b16_counts):
    refs = paper_references(vit_b16, vit_b16_counts)
    assert len(refs) == 3
    assert (refs["ours"].round(2) == refs["paper"]).all(), refs.to_string()
    tiny = _Tiny()
    assert paper_references(tiny, count_macs(tiny, (torch.randn(1, 3, 8, 8),))).empty


def test_vit_b16_per_frame_division(vit_b16):
    out = count_flops(vit_b16, (torch.randn(2, 3, 288, 144),), convention="paper")
    assert out["frames"] == 2
    assert out["macs"] == 2 * VIT_B16_PAPER_MACS
    assert out["macs_per_frame"] == VIT_B16_PAPER_MACS
    assert round(out["gflops_per_frame"], 2) == 13.96


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3)  # 3*4*9 + 4 = 112 parameters
        self.fc = nn.Linear(144, 10)  # 1450
        self.ln = nn.LayerNorm(10)  # 20

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.fc(self.conv(x).flatten(1)))  # (2, 4, 6, 6) -> (2, 144) -> (2, 10)


def test_tiny_model_counts_exactly():
    model = _Tiny()
    out = count_flops(model, (torch.randn(2, 3, 8, 8),), convention="paper")
    conv = 2 * 4 * 6 * 6 * (3 * 3 * 3)  # output elements x (C_in x k x k) = 7,776
    fc = 2 * 144 * 10  # rows x in x out = 2,880 (F.linear inside is not counted again)
    ln = 5 * 2 * 10  # 5 ops per element = 100
    assert out["by_kind"] == {"conv": conv, "linear": fc, "layernorm": ln}
    assert out["macs"] == conv + fc + ln == 10_756
    assert out["by_module"] == {"conv": conv, "fc": fc, "ln": ln}
    assert out["frames"] == 2 and out["macs_per_frame"] == 10_756 / 2
    assert count_flops(model, (torch.randn(2, 3, 8, 8),), convention="full")["macs"] == 10_756


def test_parameter_table_sums_and_trainable():
    model = _Tiny()
    model.conv.weight.requires_grad_(False)
    table = count_parameters(model, depth=1)
    assert list(table.index) == ["conv", "fc", "ln"]
    assert table["params"].tolist() == [112, 1450, 20]
    assert table["params"].sum() == sum(p.numel() for p in model.parameters())
    assert table.loc["conv", "trainable"] == 4  # only the bias
    assert table["trainable"].sum() == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_parameter_table_counts_tied_weights_once():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight = model[0].weight
    table = count_parameters(model, depth=1)
    assert table["params"].sum() == sum(p.numel() for p in model.parameters()) == 16 + 4 + 4


class _HandAttention(nn.Module):
    """Attention written with Linear, '@', SDPA and a bare projection parameter."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Parameter(torch.randn(dim, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (N, L, D) each
        attn = (q @ k.transpose(-2, -1)).softmax(-1)  # (N, L, L)
        y = attn @ v + F.scaled_dot_product_attention(q, k, v)  # (N, L, D)
        return y[:, 0] @ self.proj  # (N, 4)


def test_functional_attention_and_parameter_matmul():
    n, length, dim = 2, 5, 8
    counts = count_macs(_HandAttention(dim), (torch.randn(n, length, dim),), frames=1)
    kinds = counts.by_kind()
    assert kinds["linear"] == n * length * dim * 3 * dim
    assert kinds["attention"] == 2 * (2 * n * length * length * dim)  # '@' pair + SDPA pair
    assert kinds["param_matmul"] == n * dim * 4
    assert counts.by_module["proj"]["param_matmul"] == n * dim * 4  # booked on the parameter
    assert counts.total("paper") == kinds["linear"]


def test_multihead_attention_counted_from_shapes():
    n, length, dim = 3, 7, 16
    mha = nn.MultiheadAttention(dim, num_heads=4, batch_first=True)
    x = torch.randn(n, length, dim)
    counts = count_macs(mha, (x, x, x), frames=n)
    kinds = counts.by_kind()
    assert kinds["linear"] == n * 4 * length * dim * dim  # q, k, v in-projections + out_proj
    assert kinds["attention"] == n * 2 * length * length * dim
    assert counts.total("full") - counts.total("paper") == kinds["attention"]


def test_infer_frames():
    assert infer_frames((torch.zeros(2, 6, 3, 8, 4),)) == 12
    assert infer_frames((torch.zeros(2, 3, 6, 3, 8, 4),)) == 36
    assert infer_frames((torch.zeros(5, 3, 8, 4),)) == 5
    assert infer_frames((torch.zeros(5, 3),)) == 1


def test_unknown_convention_is_an_error(vit_b16_counts):
    with pytest.raises(ValueError, match="paper, full"):
        vit_b16_counts.total("fvcore")


def test_cli_on_tinyclip_baseline(capsys):
    """The video model's paper count per frame equals its encoder's count on one frame."""
    assert main(["baseline", "--profile", "smoke", "--depth", "2"]) == 0
    text = capsys.readouterr().out
    encoder = create_clip_visual(BackboneConfig(arch=TINYCLIP_ARCH, pretrained="none"), (64, 32))
    per_frame = count_macs(encoder, (torch.randn(1, 3, 64, 32),)).total("paper")
    assert per_frame == 41_797_440  # hand count: conv 983,040 + linears 40,550,400 + LNs 264,000
    assert f"paper {per_frame / 1e6:.4f} M  ({per_frame:,} MACs" in text
    assert "TOTAL" in text and "classifier" in text
