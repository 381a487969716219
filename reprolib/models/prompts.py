"""Prompts shared by the text-using families: per-identity learnable prompts and the frozen CLIP text
encoder (VLD's IMLP, paper section III-C; CLIP-ReID's prompt learner), and :func:`bank_index`, the prompt
or memory bank of each clip (CLIP-ReID, TF-CLIP). The templates themselves are parsed by the
torch-free :func:`reprolib.models.options.resolve_template` (config loading validates them).

Every identity c gets M = ``n_ctx`` learnable context vectors spliced into a fixed template in
place of its ``X`` placeholders (paper Table VII; the default is template 4, the one the code
uses, docs/decisions/vld.md#prompt-template-and-tokens)::

    "A X X X X person observed in both day and night conditions."
    [SOT, a | ctx_c,1 .. ctx_c,4 | person, observed, ..., ".", EOT, pad ...]
     prefix   (C, M, d_text)      suffix

The prefix/suffix lengths are **derived from the tokenisation** (template 1 has prefix [SOT],
templates 2-4 have [SOT, "a"]; docs/decisions/vld.md#prompt-template-and-tokens). The template is embedded once
with CLIP's frozen ``token_embedding``; the embedding table itself is not kept.

The frozen text encoder runs on the prompts of **all** identities every iteration (VLD's
forward; CLIP-ReID indexes by batch labels instead), giving the prototypes
``T_feat in R^{C x d}`` of the visual-to-text loss L_v2t (paper eq. 5).

Exact causal truncation (docs/decisions/vld.md#v19-text-encoder-cost): CLIP's text transformer is
causal, so the output at position ``p`` depends only on positions ``<= p``. The text feature is
read at the EOT position, hence running only the first ``EOT + 1`` tokens (16 of 77 for
template 4) gives the same features (up to float rounding) at about 1/4.9 of the cost.
``truncate=False`` runs the full context, as the released code does.
"""
from __future__ import annotations

import logging
from typing import Union

import torch
from torch import Tensor, nn

from reprolib.data.types import Modality
from reprolib.models.options import PROMPT_TEMPLATES, resolve_template

__all__ = ["PROMPT_TEMPLATES", "resolve_template", "tokenize_template", "FrozenTextEncoder", "PromptLearner", "bank_index"]

logger = logging.getLogger(__name__)

PLACEHOLDER_WORD = "X"  # tokenises to the single BPE token ``x</w>`` (docs/decisions/vld.md#prompt-template-and-tokens)


def tokenize_template(template: str, n_ctx: int, context_length: int) -> tuple[Tensor, int, int]:
    """Tokenise a template with ``n_ctx`` placeholder words and locate them.

    Args:
        template: a string containing ``{ctx}`` (see :func:`resolve_template`).
        n_ctx: number M of learnable tokens.
        context_length: the text tower's context (77 for CLIP, 32 for TinyCLIP).

    Returns:
        ``(token_ids (context_length,), ctx_start, eot_index)``: the placeholders occupy
        ``[ctx_start, ctx_start + n_ctx)``; the EOT token (the largest id) sits at ``eot_index``.

    Raises:
        ValueError: the prompt does not fit the context, or the placeholders are not found as
            ``n_ctx`` consecutive single tokens.
    """
    import open_clip

    text = template.format(ctx=" ".join([PLACEHOLDER_WORD] * n_ctx))
    placeholder_id = int(open_clip.tokenize([PLACEHOLDER_WORD], context_length=8)[0, 1])
    untruncated = open_clip.tokenize([text], context_length=1024)[0]  # (1024,), zero-padded
    n_tokens = int((untruncated != 0).sum())  # SOT + words + EOT
    if n_tokens > context_length:
        raise ValueError(f"prompt {text!r} has {n_tokens} tokens; the text context holds {context_length}")
    ids = untruncated[:context_length].clone()  # (L,)
    eot = int(ids.argmax())  # EOT (49407) is the largest id, as CLIP's pooling assumes
    positions = (ids == placeholder_id).nonzero().flatten().tolist()
    if len(positions) != n_ctx or positions != list(range(positions[0], positions[0] + n_ctx)):
        raise ValueError(f"prompt {text!r}: expected {n_ctx} consecutive '{PLACEHOLDER_WORD}' tokens, found them at "
                         f"{positions} (does the template use the word '{PLACEHOLDER_WORD}' elsewhere?)")
    return ids, positions[0], eot


class FrozenTextEncoder(nn.Module):
    """CLIP's text transformer on prompt **embeddings**, frozen, with exact EOT truncation.

    Steps (docs/decisions/vld.md#v19-text-encoder-cost): add the positional embedding, run the causal transformer,
    ``ln_final``, gather the EOT position, multiply by ``text_projection``. Gradients still
    flow through it to the prompts (input gradients only).

    Args:
        clip_text: an open_clip ``CLIP`` or ``TextTransformer``: anything with
            ``transformer``, ``positional_embedding``, ``ln_final``, ``text_projection`` and
            the causal ``attn_mask``. Its parameters are shared, and set to
            ``requires_grad=False``.
        truncate: run only the first ``max(EOT) + 1`` positions (exact, see the module doc).
    """

    def __init__(self, clip_text: nn.Module, truncate: bool = True) -> None:
        super().__init__()
        self.transformer = clip_text.transformer
        self.positional_embedding = clip_text.positional_embedding
        self.ln_final = clip_text.ln_final
        self.text_projection = clip_text.text_projection
        mask = clip_text.attn_mask
        if mask is None:
            raise ValueError("FrozenTextEncoder needs a causal text transformer (attn_mask is None); EOT "
                             "truncation and CLIP's prompt semantics rely on it")
        self.register_buffer("attn_mask", mask.clone(), persistent=False)
        self.truncate = truncate
        self.requires_grad_(False)

    @property
    def context_length(self) -> int:
        return self.positional_embedding.shape[0]

    @property
    def width(self) -> int:
        """Token width d_text (512 for CLIP ViT-B/16)."""
        return self.positional_embedding.shape[1]

    def forward(self, prompts: Tensor, eot_index: Tensor) -> Tensor:
        """Text features of prompt embeddings.

        Args:
            prompts: ``(C, L, d_text)`` token embeddings, ``L = context_length``.
            eot_index: ``(C,)`` EOT position of every prompt.

        Returns:
            ``(C, d)`` text features (unnormalised, as CLIP's ``encode_text``).
        """
        length = int(eot_index.max()) + 1 if self.truncate else prompts.shape[1]
        x = prompts[:, :length] + self.positional_embedding[:length].to(prompts.dtype)  # (C, L', d_text)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])  # (C, L', d_text), causal
        x = self.ln_final(x)  # (C, L', d_text)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]  # (C, d_text)
        if self.text_projection is None:
            return x  # (C, d_text)
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)  # (C, d)
        return x @ self.text_projection  # (C, d)

    def train(self, mode: bool = True) -> "FrozenTextEncoder":
        """Always stays in eval mode (frozen; CLIP's text tower has no dropout anyway)."""
        return super().train(False)


class PromptLearner(nn.Module):
    """Per-identity learnable prompts ``[prefix; ctx_c; suffix]`` (VLD IMLP, docs/decisions/vld.md#imlp-prompts).

    Args:
        token_embedding: CLIP's ``token_embedding`` (used once, to embed the template).
        num_classes: number of training identities C.
        context_length: the text context (77 for CLIP, 32 for TinyCLIP).
        template: Table VII index (1-4) or a custom string with ``{ctx}``.
        n_ctx: learnable tokens per identity M (4).
        init_std: standard deviation of the N(0, std^2) context init (0.02, as the code).
    """

    def __init__(self, token_embedding: nn.Embedding, num_classes: int, context_length: int,
                 template: Union[int, str] = 4, n_ctx: int = 4, init_std: float = 0.02) -> None:
        super().__init__()
        if n_ctx < 1:
            raise ValueError(f"model.extra.n_ctx must be >= 1, got {n_ctx}")
        self.template = resolve_template(template)
        ids, start, eot = tokenize_template(self.template, n_ctx, context_length)
        with torch.no_grad():
            embedded = token_embedding(ids.to(token_embedding.weight.device)).float().cpu()  # (L, d_text)
        self.n_ctx = n_ctx
        self.ctx_start = start
        self.eot_position = eot
        self.register_buffer("token_ids", ids, persistent=False)
        self.register_buffer("prefix", embedded[:start].clone())  # (P, d_text): SOT (+ "a")
        self.register_buffer("suffix", embedded[start + n_ctx:].clone())  # (L - P - M, d_text)
        self.ctx = nn.Parameter(torch.empty(num_classes, n_ctx, embedded.shape[1]))  # (C, M, d_text)
        nn.init.normal_(self.ctx, std=init_std)
        logger.debug("prompt template %r: prefix %d tokens, %d learnable, EOT at %d", self.template, start,
                     n_ctx, eot)

    @property
    def num_classes(self) -> int:
        return self.ctx.shape[0]

    def eot_index(self) -> Tensor:
        """``(C,)`` EOT position of every identity's prompt (all share the template)."""
        return torch.full((self.num_classes,), self.eot_position, dtype=torch.long, device=self.ctx.device)

    def forward(self) -> Tensor:
        """The prompt embeddings of all C identities, ``(C, L, d_text)``."""
        c = self.num_classes
        prefix = self.prefix.unsqueeze(0).expand(c, -1, -1).to(self.ctx.dtype)  # (C, P, d_text)
        suffix = self.suffix.unsqueeze(0).expand(c, -1, -1).to(self.ctx.dtype)  # (C, S, d_text)
        return torch.cat([prefix, self.ctx, suffix], dim=1)  # (C, L, d_text)


def bank_index(modality: Tensor, banks: str) -> Tensor:
    """Row of the bank each clip uses: 0 for ``shared``; RGB 0 / IR 1 for ``per_modality``.

    Args:
        modality: ``(N,)`` modality codes (``Modality.RGB`` = 2, ``Modality.IR`` = 1).
        banks: ``"shared"`` | ``"per_modality"``.

    Returns:
        ``(N,)`` long indices into :data:`BANK_NAMES` ``[banks]``.

    Raises:
        ValueError: a code other than RGB/IR with ``per_modality`` banks.
    """
    if banks == "shared":
        return torch.zeros_like(modality, dtype=torch.long)
    rgb, ir = modality == int(Modality.RGB), modality == int(Modality.IR)
    if not bool((rgb | ir).all()):
        raise ValueError(f"per-modality banks need RGB ({int(Modality.RGB)}) or IR ({int(Modality.IR)}) codes, got "
                         f"{sorted(set(modality.tolist()))}")
    return ir.long()  # (N,) rgb -> 0, ir -> 1, as BANK_NAMES["per_modality"]
