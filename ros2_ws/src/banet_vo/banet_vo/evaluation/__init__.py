"""banet_vo.evaluation."""
