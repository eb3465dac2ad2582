"""GRU4Rec's sampled losses over the scores of one mini-batch.

Every loss takes scores [B, C] whose columns are the mini-batch's own targets (column i is row
i's target, so the positives are the diagonal) followed by the shared extra samples; the other
rows' targets and the samples are row i's negatives. Losses are summed over the rows.

* cross-entropy: -log(softmax_i + eps) over all C columns, with the logQ correction: training
  subtracts `logq * log(q_j)` from each column first, q_j being the probability with which
  column j was drawn (support for the other rows' targets, which come from the data;
  support ** sample_alpha for the shared samples), so items that are drawn more often are not
  pushed down for that alone.
* BPR-max (CIKM 2018): with s_j the softmax over the negatives only (the target masked),
  -log(sum_j s_j * sigmoid(r_i - r_j) + eps) + bpreg * sum_j s_j * r_j ** 2.
* TOP1-max (CIKM 2018): sum_j s_j * (sigmoid(r_j - r_i) + sigmoid(r_j ** 2)).

`bpr_max` and `top1_max` say what the losses are; training uses `fused_bpr_max`, the same
function with its gradient derived by hand: with ELU or no final activation, one compiled pass
per row (`loss_kernels.py`); otherwise `_BPRMax` below, which needs a third of the passes over
the [B, C] scores that autograd's chain of elementwise steps makes (the tests check that all
of them agree).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nextbest.models.gru4rec.loss_kernels import EPSILON, bpr_max_rows, cross_entropy_rows


def activate(scores: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    """The final activation in front of BPR-max / TOP1-max (monotone, so ranking-neutral)."""
    if kind == "elu":
        return F.elu(scores, alpha)
    if kind == "relu":
        return torch.relu(scores)
    if kind == "tanh":
        return torch.tanh(scores)
    return scores


def cross_entropy(scores: torch.Tensor, log_q: torch.Tensor | None) -> torch.Tensor:
    """Sampled softmax cross-entropy; `log_q` [C] is logq * log(q) of the columns."""
    if log_q is not None:
        scores = scores - log_q  # [B, C]
    log_p = F.log_softmax(scores, dim=1).diagonal()  # [B] log-probability of the target
    return -torch.log(torch.exp(log_p) + EPSILON).sum()


def fused_cross_entropy(scores: torch.Tensor, log_q: torch.Tensor | None) -> torch.Tensor:
    """`cross_entropy(scores, log_q)` with its gradient computed in the same compiled pass."""
    if scores.dtype != torch.float32:
        return cross_entropy(scores, log_q)
    loss = _CompiledCrossEntropy.apply(scores, log_q)  # type: ignore[no-untyped-call]
    assert isinstance(loss, torch.Tensor)
    return loss


class _CompiledCrossEntropy(torch.autograd.Function):
    """Cross-entropy whose forward pass computes the gradient too (`cross_entropy_rows`)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        scores: torch.Tensor,
        log_q: torch.Tensor | None,
    ) -> torch.Tensor:
        values = scores.detach().contiguous()
        offsets = torch.zeros(values.shape[1]) if log_q is None else log_q.detach().float()
        grad = torch.empty_like(values)
        loss = cross_entropy_rows(values.numpy(), offsets.contiguous().numpy(), grad.numpy())
        ctx.save_for_backward(grad)
        return torch.tensor(loss, dtype=torch.float32)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        (grad,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return _times(grad, grad_output), None


def _negative_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over each row's negatives: [B, C], exactly 0 at the row's own target."""
    rows, cols = scores.shape
    target = torch.eye(rows, cols, dtype=torch.bool)  # [B, C], True on the diagonal
    return torch.softmax(scores.masked_fill(target, float("-inf")), dim=1)


def bpr_max(scores: torch.Tensor, bpreg: float) -> torch.Tensor:
    weights = _negative_softmax(scores)  # [B, C]
    positive = scores.diagonal().unsqueeze(1)  # [B, 1]
    above = (weights * torch.sigmoid(positive - scores)).sum(dim=1)  # [B]
    penalty = (weights * scores.square()).sum(dim=1)  # [B]
    return (-torch.log(above + EPSILON) + bpreg * penalty).sum()


def top1_max(scores: torch.Tensor) -> torch.Tensor:
    weights = _negative_softmax(scores)  # [B, C]
    positive = scores.diagonal().unsqueeze(1)  # [B, 1]
    terms = torch.sigmoid(scores - positive) + torch.sigmoid(scores.square())  # [B, C]
    return (weights * terms).sum()


def fused_bpr_max(logits: torch.Tensor, bpreg: float, kind: str, alpha: float) -> torch.Tensor:
    """`bpr_max(activate(logits, kind, alpha), bpreg)` with a hand-derived backward pass."""
    compiled = kind in ("elu", "linear") and logits.dtype == torch.float32
    function = _CompiledBPRMax if compiled else _BPRMax
    loss = function.apply(logits, bpreg, kind, alpha)  # type: ignore[no-untyped-call]
    assert isinstance(loss, torch.Tensor)
    return loss


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products [B] of a, b [B, C] (faster here than einsum's batched matmul)."""
    return (a * b).sum(dim=1)


def _activation_slope(
    logits: torch.Tensor, r: torch.Tensor, kind: str, alpha: float
) -> torch.Tensor:
    """d activate(x) / dx at `logits` [B, C], given r = activate(logits).

    Built from vectorised arithmetic only: boolean masks and `torch.where` over a [B, C]
    tensor are an order of magnitude slower than a multiply on this CPU build.
    """
    positive = torch.sign(logits).clamp_(min=0.0)  # [B, C] 1 where x > 0, else 0
    if kind == "elu":  # 1 for x > 0, alpha * exp(x) = r + alpha below
        return r.clamp(max=0.0).add_(alpha).add_(positive, alpha=1.0 - alpha)
    if kind == "relu":
        return positive
    return 1.0 - r.square()  # tanh


def _times(grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """A compiled loss's stored gradient times the outer factor (training's is 1: no pass)."""
    return grad if float(grad_output) == 1.0 else grad * grad_output


class _CompiledBPRMax(torch.autograd.Function):
    """BPR-max whose forward pass computes the gradient too (`loss_kernels.bpr_max_rows`)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        logits: torch.Tensor,
        bpreg: float,
        kind: str,
        alpha: float,
    ) -> torch.Tensor:
        scores = logits.detach().contiguous()
        grad = torch.empty_like(scores)
        loss = bpr_max_rows(scores.numpy(), grad.numpy(), bpreg, alpha if kind == "elu" else 0.0)
        ctx.save_for_backward(grad)
        return torch.tensor(loss, dtype=torch.float32)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        (grad,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return _times(grad, grad_output), None, None, None


class _BPRMax(torch.autograd.Function):
    """BPR-max, forward and backward in few passes over the [B, C] scores.

    With s the negatives' softmax, sig_j = sigmoid(r_i - r_j), A = sum_j s_j sig_j and
    P = sum_j s_j r_j ** 2, the loss of a row is -log(A + eps) + bpreg * P, and for a negative
    column j (softmax: ds_k/dr_j = s_k (delta_kj - s_j); dsig_j/dr_j = -sig_j (1 - sig_j)):

        dA/dr_j = s_j (sig_j ** 2 - A)           dP/dr_j = s_j (r_j ** 2 + 2 r_j - P)
        dA/dr_i = sum_j s_j sig_j (1 - sig_j) = A - sum_j s_j sig_j ** 2    (the target)
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        logits: torch.Tensor,
        bpreg: float,
        kind: str,
        alpha: float,
    ) -> torch.Tensor:
        r = activate(logits, kind, alpha)  # [B, C]
        s = r.clone()
        s.diagonal().fill_(float("-inf"))  # the target is not its own negative
        s = torch.softmax(s, dim=1)  # [B, C], 0 on the diagonal
        sig = torch.sigmoid_(r.diagonal().unsqueeze(1) - r)  # [B, C]
        above = _rowdot(s, sig)  # [B] A
        penalty = _rowdot(s, r.square())  # [B] P
        ctx.save_for_backward(logits, r, s, sig, above, penalty)
        ctx.bpreg, ctx.kind, ctx.alpha = bpreg, kind, alpha  # type: ignore[attr-defined]
        return (bpreg * penalty - torch.log(above + EPSILON)).sum()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        logits, r, s, sig, above, penalty = ctx.saved_tensors  # type: ignore[attr-defined]
        bpreg: float = ctx.bpreg  # type: ignore[attr-defined]
        coef = -1.0 / (above + EPSILON)  # [B] d(-log(A + eps))/dA
        grad = sig.square()  # [B, C] sig ** 2
        target = coef * (above - _rowdot(s, grad))  # [B] d loss / d r_i
        grad.sub_(above.unsqueeze(1)).mul_(coef.unsqueeze(1))  # coef * (sig ** 2 - A)
        if bpreg:
            reg = r.square().add_(r, alpha=2.0).sub_(penalty.unsqueeze(1))  # r ** 2 + 2r - P
            grad.add_(reg, alpha=bpreg)
        grad.mul_(s)  # 0 on the diagonal, where the target's own term goes
        grad.diagonal().add_(target)
        kind, alpha = ctx.kind, ctx.alpha  # type: ignore[attr-defined]
        if kind != "linear":
            grad.mul_(_activation_slope(logits, r, kind, alpha))
        return grad.mul_(grad_output), None, None, None
