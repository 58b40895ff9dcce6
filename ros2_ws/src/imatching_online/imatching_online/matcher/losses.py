"""Supervised matcher loss (pretraining with ground-truth correspondences).

CAPS-style uncertainty weighting: for a predicted match at distance e from the truth with spread σ
(the std of the softmax distribution, px), the term e / σ + log σ is minimised at σ = e, so the network
learns to report its own uncertainty and hard points do not dominate early training. The fine term is
used only where the truth lies inside the fine window (elsewhere the fine level cannot reach it).
"""

from __future__ import annotations

import torch

from imatching_online.matcher.network import STRIDE_FINE, MatchOutput

COARSE_STD_FLOOR_PX = 0.5
FINE_STD_FLOOR_PX = 0.25


def supervised_loss(out: MatchOutput, gt_uv: torch.Tensor, window_radius: int) -> tuple[torch.Tensor, dict]:
    """Loss and logs for matches (B, M) against ground truth gt_uv (B, M, 2) (all valid)."""
    if gt_uv.shape != out.uv.shape:
        raise ValueError(f"gt_uv must have shape {tuple(out.uv.shape)}, got {tuple(gt_uv.shape)}")
    e_c = (out.uv_coarse - gt_uv).norm(dim=-1)
    s_c = out.std_coarse + COARSE_STD_FLOOR_PX
    loss_c = (e_c / s_c + s_c.log()).mean()
    e_f = (out.uv - gt_uv).norm(dim=-1)
    reach = (out.uv_coarse.detach() - gt_uv).abs().amax(-1) <= window_radius * STRIDE_FINE
    s_f = out.std_fine + FINE_STD_FLOOR_PX
    fine_terms = (e_f / s_f + s_f.log())[reach]
    loss_f = fine_terms.mean() if fine_terms.numel() else e_f.sum() * 0.0
    with torch.no_grad():
        logs = {
            "loss_coarse": float(loss_c),
            "loss_fine": float(loss_f),
            "err_coarse_px": float(e_c.median()),
            "err_fine_px": float(e_f.median()),
            "in_window": float(reach.float().mean()),
        }
    return loss_c + loss_f, logs
