"""Packed tokens and the padded buffers attention runs on, shared by GRPO's training paths.

A GRPO batch is U distinct prompts (left-padded to Lp) and B completions, row b answering prompt
`rows[b]`. `rsi.engine.packed` and `rsi.engine.tape` keep every token's activations packed, (N, ...): the
prompts' real tokens (`prompt_real`, indices into U * Lp), then the completion inputs
(`comp_real`, indices into B * Ci, in any order). Attention needs them padded: `Layout.prompts`
and `Layout.completions` give (R, heads, L, D) buffers (views, when nothing is left out and the
order is row by row or step by step), `Layout.packed` takes them back, the masks say
what each query may see (prompts: causal over their real tokens; completions: their prompt's real
tokens, then causal over their own), and `gather` / `ungather` copy a prompt's keys to the rows
that sample from it and sum the rows' gradients back.
"""

from __future__ import annotations

import torch

from rsi.engine.lean import heads, padded_mask


class Layout:
    def __init__(self, model, U: int, Lp: int, B: int, Ci: int, rows: torch.Tensor, prompt_real: torch.Tensor,
                 comp_real: torch.Tensor, prompt_attn: torch.Tensor) -> None:
        self.H, self.KV, self.D = heads(model.config)
        self.U, self.Lp, self.B, self.Ci, self.rows = U, Lp, B, Ci, rows
        self.prompt_real, self.comp_real, self.Np = prompt_real, comp_real, len(prompt_real)
        self.prompt_mask = padded_mask(prompt_attn) if bool((prompt_attn == 0).any()) else None  # None: causal
        causal = torch.ones((Ci, Ci), dtype=torch.bool).tril()
        self.comp_mask = torch.cat([prompt_attn.bool()[rows][:, None, None, :].expand(-1, 1, Ci, Lp),
                                    causal[None, None].expand(B, 1, Ci, Ci)], dim=-1)  # (B, 1, Ci, Lp + Ci)
        # GRPO's rows are U equal consecutive groups: copying a prompt to its rows is then a broadcast,
        # whose backward is a cheap sum, instead of an indexed scatter
        self.grouped = B % U == 0 and torch.equal(rows, torch.arange(U).repeat_interleave(B // U))
        self._prompt_dense = "rows" if torch.equal(prompt_real, torch.arange(U * Lp)) else None
        by_step = (torch.arange(B)[None] * Ci + torch.arange(Ci)[:, None]).flatten()
        self._comp_dense = ("rows" if torch.equal(comp_real, torch.arange(B * Ci))
                            else "steps" if torch.equal(comp_real, by_step) else None)
        self._grouped_masks: dict[tuple[str, int], torch.Tensor] = {}

    def prompts(self, t: torch.Tensor) -> torch.Tensor:
        """The prompt part of packed (N, heads, D) as (U, heads, Lp, D), zeros where nothing was packed."""
        return self._buffer(t[:self.Np], self.prompt_real, self.U, self.Lp, self._prompt_dense)

    def completions(self, t: torch.Tensor) -> torch.Tensor:
        """The completion part of packed (N, heads, D) as (B, heads, Ci, D)."""
        return self._buffer(t[self.Np:], self.comp_real, self.B, self.Ci, self._comp_dense)

    def packed(self, prompts: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
        """The inverse of `prompts` and `completions`: (N, heads, D)."""
        return torch.cat([self._unbuffer(prompts, self.prompt_real, self._prompt_dense),
                          self._unbuffer(completions, self.comp_real, self._comp_dense)])

    def pack_into(self, out: torch.Tensor, prompts: torch.Tensor, completions: torch.Tensor) -> None:
        """`packed(prompts, completions)` written into `out` (N, heads, D) (a head slice of a wider
        tensor, say), without an intermediate copy where the layout is dense."""
        for buf, part, index, dense in ((prompts, out[:self.Np], self.prompt_real, self._prompt_dense),
                                        (completions, out[self.Np:], self.comp_real, self._comp_dense)):
            if dense == "rows":
                part.view(buf.shape[0], buf.shape[2], *part.shape[1:]).copy_(buf.transpose(1, 2))
            elif dense == "steps":
                part.view(buf.shape[2], buf.shape[0], *part.shape[1:]).copy_(buf.permute(2, 0, 1, 3))
            else:
                part.copy_(self._unbuffer(buf, index, dense))

    def _buffer(self, t, index, R, L, dense):
        if dense == "rows":  # packed row by row with nothing left out: a view
            return t.view(R, L, *t.shape[1:]).transpose(1, 2)
        if dense == "steps":  # packed position by position (every row at step 0, then 1, ...): a view
            return t.view(L, R, *t.shape[1:]).permute(1, 2, 0, 3)
        buf = t.new_zeros((R * L, *t.shape[1:])).index_copy(0, index, t)
        return buf.view(R, L, *t.shape[1:]).transpose(1, 2)

    @staticmethod
    def _unbuffer(buf, index, dense):
        if dense == "rows":
            return buf.transpose(1, 2).flatten(0, 1)
        if dense == "steps":
            return buf.permute(2, 0, 1, 3).flatten(0, 1)
        return buf.transpose(1, 2).flatten(0, 1).index_select(0, index)

    def grouped_mask(self, part: str, groups: int) -> torch.Tensor:
        """The `part` ("prompts" or "completions") mask for queries grouped `groups` per key head:
        (R, 1, groups * T, L) bool, row (g, t) of the grouped queries allowed what query t is."""
        key = (part, groups)
        if key not in self._grouped_masks:
            mask = self.prompt_mask if part == "prompts" else self.comp_mask
            if mask is None:  # causal over the whole prompt
                mask = torch.ones((self.Lp, self.Lp), dtype=torch.bool).tril()[None, None].expand(self.U, 1, -1, -1)
            R, _, T, L = mask.shape
            self._grouped_masks[key] = mask[:, :, None].expand(R, 1, groups, T, L).reshape(R, 1, groups * T, L)
        return self._grouped_masks[key]

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """t (U, ...) -> t[rows] (B, ...)."""
        if self.grouped:
            U, B = self.U, self.B
            return t[:, None].expand(U, B // U, *t.shape[1:]).reshape(B, *t.shape[1:])
        return t[self.rows]

    def ungather(self, t: torch.Tensor) -> torch.Tensor:
        """t (B, ...) -> (U, ...): each prompt's sum over its rows (the transpose of `gather`)."""
        if self.grouped:
            return t.view(self.U, self.B // self.U, *t.shape[1:]).sum(1)
        return t.new_zeros((self.U, *t.shape[1:])).index_add_(0, self.rows, t)


def shift(comp_real: torch.Tensor, Ci: int, C: int) -> torch.Tensor:
    """Index in B * C of the token predicted by each packed completion input (b, t): (b, t + 1)."""
    b, t = comp_real // Ci, comp_real % Ci
    return b * C + t + 1
